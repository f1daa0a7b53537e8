<?php
/**
 * The storefront's way to Encore. WooCommerce has no app proxy like Shopify's, so this plugin is one: the widget
 * calls the REST route encore/v1/proxy/<path> on the store, WordPress names the logged-in user from its cookie
 * (which counts only with the wp_rest nonce in X-WP-Nonce), and the request goes on server to server to Encore's
 * /proxy/<path>, signed with the consumer secret of Encore's REST key, which only this store and Encore hold.
 * Encore's answer comes back as it was: status, content type and body, HTML pages too.
 *
 * The signature (Encore checks it in connectors/woocommerce/proxy.py; both must agree byte for byte): lower-case
 * hex HMAC-SHA256, keyed with the consumer secret, of these fields joined by "\n": "encore-proxy-v1", the method,
 * the path ("/proxy/loyalty"), the query string as sent, the Unix timestamp, the store URL, the customer (the
 * WordPress user id, empty when logged out) and the hex SHA-256 of the body.
 *
 * Also here: a referral link (?encore_ref=<CODE> on any storefront address) goes to that route's r/<CODE>, and
 * every storefront page loads Encore's widget.
 *
 * @package Encore
 */

defined( 'ABSPATH' ) || exit;

/** The REST namespace of the route, and the route's base under it. */
const ENCORE_PROXY_NAMESPACE = 'encore/v1';
const ENCORE_PROXY_BASE      = 'proxy';

/** What the signed message starts with, so nothing else signed with the same secret passes for a request. */
const ENCORE_PROXY_PURPOSE = 'encore-proxy-v1';

/** Seconds to wait for Encore. */
const ENCORE_PROXY_TIMEOUT = 10;

/** Query parameters WordPress's REST API reads itself; Encore never sees them. */
const ENCORE_PROXY_WP_PARAMS = array( 'rest_route', '_wpnonce', '_method', '_envelope', '_jsonp', '_fields', '_embed' );

/**
 * The route, GET and POST, open to everybody: who is logged in is for Encore to judge, from the signed customer.
 */
function encore_proxy_register_route() {
	register_rest_route(
		ENCORE_PROXY_NAMESPACE,
		'/' . ENCORE_PROXY_BASE . '/(?P<path>.*)',
		array(
			'methods'             => array( 'GET', 'POST' ),
			'callback'            => 'encore_proxy_forward',
			'permission_callback' => '__return_true',
		)
	);
}
add_action( 'rest_api_init', 'encore_proxy_register_route' );

/**
 * Encore's path for the route's <path>: "/proxy/" and segments of unreserved characters only, so the path reads
 * the same encoded or decoded and cannot climb out of /proxy/ ("." and ".." are refused).
 *
 * @param mixed $path What the route matched.
 * @return string|null Null for anything else.
 */
function encore_proxy_path( $path ) {
	$segments = explode( '/', (string) $path );
	foreach ( $segments as $segment ) {
		if ( '.' === $segment || '..' === $segment || ! preg_match( '/^[A-Za-z0-9._~-]+$/', $segment ) ) {
			return null;
		}
	}
	return '/proxy/' . implode( '/', $segments );
}

/**
 * The query string as the browser sent it, without WordPress's own parameters: passed on byte for byte (not
 * parsed and rebuilt, which would change what Encore reads and what is signed).
 *
 * With plain permalinks the route is itself a parameter (?rest_route=/encore/v1/proxy), so a client that appends
 * "/loyalty?locale=ko" to the endpoint puts its own query inside rest_route: what follows that "?" is kept as
 * the query it meant.
 *
 * @return string
 */
function encore_proxy_query() {
	$raw  = isset( $_SERVER['QUERY_STRING'] ) ? wp_unslash( $_SERVER['QUERY_STRING'] ) : ''; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- passed on as sent, and signed.
	$kept = array();
	foreach ( explode( '&', (string) $raw ) as $pair ) {
		$parts = explode( '=', $pair, 2 );
		$name  = urldecode( $parts[0] );
		if ( 'rest_route' === $name && isset( $parts[1] ) && false !== strpos( $parts[1], '?' ) ) {
			$pair = explode( '?', $parts[1], 2 )[1];
		} elseif ( in_array( $name, ENCORE_PROXY_WP_PARAMS, true ) ) {
			continue;
		}
		if ( '' !== $pair ) {
			$kept[] = $pair;
		}
	}
	return implode( '&', $kept );
}

/**
 * The signature of one request (see this file's header).
 *
 * @param string $secret    The consumer secret of Encore's REST key.
 * @param string $method    GET or POST.
 * @param string $path      Encore's path, "/proxy/...".
 * @param string $query     The query string as sent, without "?".
 * @param string $timestamp Unix seconds.
 * @param string $store     The store's URL.
 * @param string $customer  The WordPress user id, or "" when logged out.
 * @param string $body      The body as sent.
 * @return string Lower-case hex.
 */
function encore_proxy_signature( $secret, $method, $path, $query, $timestamp, $store, $customer, $body ) {
	$message = implode( "\n", array( ENCORE_PROXY_PURPOSE, $method, $path, $query, $timestamp, $store, $customer, hash( 'sha256', $body ) ) );
	return hash_hmac( 'sha256', $message, $secret );
}

/**
 * The headers that name the store and the customer and sign the request.
 *
 * @param object $key    The row from encore_key().
 * @param string $method GET or POST.
 * @param string $path   Encore's path.
 * @param string $query  The query string.
 * @param string $body   The body.
 * @return array<string, string>
 */
function encore_proxy_headers( $key, $method, $path, $query, $body ) {
	$user      = get_current_user_id();
	$customer  = $user > 0 ? (string) $user : '';
	$timestamp = (string) time();
	$store     = encore_store_url();
	return array(
		'X-Encore-Store'     => $store,
		'X-Encore-Customer'  => $customer,
		'X-Encore-Timestamp' => $timestamp,
		'X-Encore-Signature' => encore_proxy_signature( (string) $key->consumer_secret, $method, $path, $query, $timestamp, $store, $customer, $body ),
	);
}

/**
 * An answer of the plugin's own, in the shape of Encore's errors.
 *
 * @param int    $status  HTTP status.
 * @param string $error   Machine-readable reason.
 * @param string $message For the shopper.
 * @return WP_REST_Response
 */
function encore_proxy_error( $status, $error, $message ) {
	$response = new WP_REST_Response(
		array(
			'error'   => $error,
			'message' => $message,
		),
		$status
	);
	$response->header( 'Cache-Control', 'no-store' );
	return $response;
}

/**
 * Forward one request to Encore and hand back its answer (served raw by encore_proxy_serve).
 *
 * @param WP_REST_Request $request The widget's request.
 * @return WP_REST_Response
 */
function encore_proxy_forward( $request ) {
	$key = encore_key();
	if ( null === $key ) {
		return encore_proxy_error( 503, 'not_connected', __( 'This store is not connected to Encore yet.', 'encore' ) );
	}
	$matched = $request->get_url_params(); // Not get_param(): a query or body parameter named path would win over it.
	$path    = encore_proxy_path( explode( '?', isset( $matched['path'] ) ? (string) $matched['path'] : '', 2 )[0] ); // Up to a query (see encore_proxy_query).
	if ( null === $path ) {
		return encore_proxy_error( 404, 'not_found', __( 'Encore has no such page.', 'encore' ) );
	}
	$method  = strtoupper( $request->get_method() );
	$query   = encore_proxy_query();
	$body    = 'POST' === $method ? (string) $request->get_body() : '';
	$headers = encore_proxy_headers( $key, $method, $path, $query, $body );
	$type    = $request->get_header( 'content_type' );
	if ( 'POST' === $method && is_string( $type ) && '' !== $type ) {
		$headers['Content-Type'] = $type;
	}
	$sent = wp_remote_request(
		encore_app_url() . $path . ( '' === $query ? '' : '?' . $query ),
		array(
			'method'      => $method,
			'headers'     => $headers,
			'body'        => 'POST' === $method ? $body : null,
			'timeout'     => ENCORE_PROXY_TIMEOUT,
			'redirection' => 0, // Encore's redirects are the shopper's to follow, not ours.
		)
	);
	if ( is_wp_error( $sent ) ) {
		return encore_proxy_error( 502, 'unavailable', __( 'Encore cannot be reached right now. Try again in a moment.', 'encore' ) );
	}
	$response = new WP_REST_Response( (string) wp_remote_retrieve_body( $sent ), (int) wp_remote_retrieve_response_code( $sent ) );
	foreach ( array( 'Content-Type', 'Cache-Control', 'Location' ) as $name ) {
		$value = wp_remote_retrieve_header( $sent, $name );
		if ( is_string( $value ) && '' !== $value ) {
			$response->header( $name, $value );
		}
	}
	return $response;
}

/**
 * Serve Encore's answer as it came: WordPress has already sent its status and headers, and would otherwise
 * encode the body as JSON a second time.
 *
 * @param bool             $served  Whether the answer was served already.
 * @param WP_HTTP_Response $result  The answer.
 * @param WP_REST_Request  $request The request.
 * @return bool
 */
function encore_proxy_serve( $served, $result, $request ) {
	$ours = 0 === strpos( (string) $request->get_route(), '/' . ENCORE_PROXY_NAMESPACE . '/' . ENCORE_PROXY_BASE . '/' );
	if ( $served || ! $ours || ! $result instanceof WP_HTTP_Response || ! is_string( $result->get_data() ) ) {
		return $served;
	}
	echo $result->get_data(); // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- Encore's own answer, passed on unchanged like an app proxy does.
	return true;
}
add_filter( 'rest_pre_serve_request', 'encore_proxy_serve', 10, 3 );

/**
 * A referral link (?encore_ref=<CODE> on any storefront address) goes to Encore's referral page for the code.
 */
function encore_referral_redirect() {
	if ( ! isset( $_GET['encore_ref'] ) ) { // phpcs:ignore WordPress.Security.NonceVerification.Recommended -- a public link, nothing changes here.
		return;
	}
	$code = sanitize_text_field( wp_unslash( $_GET['encore_ref'] ) ); // phpcs:ignore WordPress.Security.NonceVerification.Recommended
	if ( ! preg_match( '/^[A-Za-z0-9_-]{1,64}$/', $code ) ) {
		return;
	}
	wp_safe_redirect( rest_url( ENCORE_PROXY_NAMESPACE . '/' . ENCORE_PROXY_BASE . '/r/' . $code ) );
	exit;
}
add_action( 'template_redirect', 'encore_referral_redirect', 1 ); // Before WordPress's canonical redirects.

/**
 * Encore's widget on every storefront page, for every visitor, once the store is connected: its stylesheet and
 * its script, told where the route is, the visitor's language and the nonce that lets WordPress name them.
 */
function encore_widget_tags() {
	if ( null === encore_key() ) {
		return;
	}
	$assets = encore_app_url() . '/static/widget/';
	// phpcs:disable WordPress.WP.EnqueuedResources -- the script needs data attributes, which wp_enqueue_script cannot add on WordPress 5.8.
	echo '<link rel="stylesheet" id="encore-widget-css" href="' . esc_url( $assets . 'encore-widget.css' ) . '">' . "\n";
	echo '<script id="encore-widget" src="' . esc_url( $assets . 'encore-widget.js' ) . '" defer'
		. ' data-endpoint="' . esc_url( rest_url( ENCORE_PROXY_NAMESPACE . '/' . ENCORE_PROXY_BASE ) ) . '"'
		. ' data-locale="' . esc_attr( determine_locale() ) . '"'
		. ' data-nonce="' . esc_attr( wp_create_nonce( 'wp_rest' ) ) . '"></script>' . "\n";
	// phpcs:enable WordPress.WP.EnqueuedResources
}
add_action( 'wp_footer', 'encore_widget_tags' );
