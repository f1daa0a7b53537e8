<?php
/**
 * Plugin Name:       Encore
 * Description:       Encore's settings for this store inside WordPress admin, and Encore's loyalty widget on the storefront.
 * Version:           0.1.0
 * Requires at least: 5.8
 * Requires PHP:      7.4
 * Author:            Encore
 * License:           GPL-2.0-or-later
 * Text Domain:       encore
 *
 * @package Encore
 */

defined( 'ABSPATH' ) || exit;

/** Where Encore answers when the option is not set. */
const ENCORE_DEFAULT_APP_URL = 'http://127.0.0.1:8000';

/** Seconds a sign-in token lives; Encore refuses any that lives longer than two minutes. */
const ENCORE_TOKEN_TTL = 60;

/**
 * Encore's address, without a trailing slash.
 *
 * @return string
 */
function encore_app_url() {
	$url = get_option( 'encore_app_url', ENCORE_DEFAULT_APP_URL );
	return untrailingslashit( is_string( $url ) && '' !== $url ? $url : ENCORE_DEFAULT_APP_URL );
}

/**
 * The capability that opens Encore: WooCommerce's store managers, or administrators without WooCommerce.
 *
 * @return string
 */
function encore_capability() {
	return class_exists( 'WooCommerce' ) ? 'manage_woocommerce' : 'manage_options';
}

/**
 * The store's address as Encore knows it (the "iss" of every token).
 *
 * @return string
 */
function encore_store_url() {
	return untrailingslashit( home_url() );
}

/**
 * The REST key WooCommerce created for Encore when the store connected (WC_Auth::create_keys names it
 * "Encore - API (<date>)" and keeps its consumer secret in plain text): the newest one, or null when the
 * store is not connected or WooCommerce's table does not exist.
 *
 * @return object|null With consumer_secret and truncated_key (the consumer key's last 7 characters).
 */
function encore_key() {
	global $wpdb;
	$table = $wpdb->prefix . 'woocommerce_api_keys';
	if ( $wpdb->get_var( $wpdb->prepare( 'SHOW TABLES LIKE %s', $wpdb->esc_like( $table ) ) ) !== $table ) {
		return null;
	}
	$row = $wpdb->get_row(
		$wpdb->prepare(
			"SELECT consumer_secret, truncated_key FROM {$table} WHERE description LIKE %s ORDER BY key_id DESC LIMIT 1", // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
			$wpdb->esc_like( 'Encore - API (' ) . '%'
		)
	);
	if ( ! $row || '' === (string) $row->consumer_secret || '' === (string) $row->truncated_key ) {
		return null;
	}
	return $row;
}

/**
 * Base64url without padding (RFC 7515).
 *
 * @param string $data Bytes.
 * @return string
 */
function encore_base64url( $data ) {
	return rtrim( strtr( base64_encode( $data ), '+/', '-_' ), '=' ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode
}

/**
 * A JWT (HS256) for the current user, signed with the consumer secret Encore and the store share. It lives
 * 60 seconds and Encore accepts it once.
 *
 * @param object $key The row from encore_key().
 * @return string
 */
function encore_token( $key ) {
	$now    = time();
	$header = array(
		'alg' => 'HS256',
		'typ' => 'JWT',
		'kid' => (string) $key->truncated_key,
	);
	$claims = array(
		'iss'    => encore_store_url(),
		'aud'    => 'encore',
		'sub'    => (string) get_current_user_id(),
		'iat'    => $now,
		'exp'    => $now + ENCORE_TOKEN_TTL,
		'jti'    => bin2hex( random_bytes( 16 ) ),
		'locale' => get_user_locale(),
	);
	$input  = encore_base64url( wp_json_encode( $header ) ) . '.' . encore_base64url( wp_json_encode( $claims ) );
	return $input . '.' . encore_base64url( hash_hmac( 'sha256', $input, (string) $key->consumer_secret, true ) );
}

/**
 * The admin-post address that mints a token and sends the browser to Encore.
 *
 * @return string
 */
function encore_open_url() {
	return wp_nonce_url( admin_url( 'admin-post.php?action=encore_open' ), 'encore_open' );
}

/**
 * Mint a fresh token on demand and redirect to Encore; tokens never appear in a page.
 */
function encore_open() {
	if ( ! current_user_can( encore_capability() ) ) {
		wp_die( esc_html__( 'You are not allowed to open Encore.', 'encore' ), '', array( 'response' => 403 ) );
	}
	check_admin_referer( 'encore_open' );
	$key = encore_key();
	if ( null === $key ) {
		wp_die( esc_html__( 'This store is not connected to Encore yet.', 'encore' ), '', array( 'response' => 409 ) );
	}
	nocache_headers();
	header( 'Referrer-Policy: no-referrer' );
	wp_redirect( encore_app_url() . '/woocommerce/admin?token=' . rawurlencode( encore_token( $key ) ) ); // phpcs:ignore WordPress.Security.SafeRedirect.wp_redirect_wp_redirect -- Encore is another host by design.
	exit;
}
add_action( 'admin_post_encore_open', 'encore_open' );

/**
 * The "Encore" menu page.
 */
function encore_admin_menu() {
	add_menu_page(
		__( 'Encore', 'encore' ),
		__( 'Encore', 'encore' ),
		encore_capability(),
		'encore',
		'encore_render_page',
		'dashicons-update',
		56
	);
}
add_action( 'admin_menu', 'encore_admin_menu' );

/**
 * Keep only an http(s) address, without a trailing slash; anything else keeps the saved value.
 *
 * @param mixed $value What the form sent.
 * @return string
 */
function encore_sanitize_app_url( $value ) {
	$url = untrailingslashit( esc_url_raw( trim( (string) $value ), array( 'http', 'https' ) ) );
	if ( '' === $url ) {
		add_settings_error( 'encore_app_url', 'encore_app_url', __( 'Encore address must be an http or https URL.', 'encore' ) );
		return encore_app_url();
	}
	return $url;
}

/**
 * The one setting, Encore's address, sanitized wherever it is saved. Only administrators change it (options.php
 * asks for manage_options).
 */
function encore_register_settings() {
	register_setting(
		'encore',
		'encore_app_url',
		array(
			'type'              => 'string',
			'sanitize_callback' => 'encore_sanitize_app_url',
			'default'           => ENCORE_DEFAULT_APP_URL,
		)
	);
}
add_action( 'init', 'encore_register_settings' );

/**
 * Encore's pages in a frame when the store is connected, else a button that starts WooCommerce's wc-auth flow.
 */
function encore_render_page() {
	if ( ! current_user_can( encore_capability() ) ) {
		wp_die( esc_html__( 'You are not allowed to open Encore.', 'encore' ), '', array( 'response' => 403 ) );
	}
	echo '<div class="wrap" id="encore">';
	echo '<h1>' . esc_html__( 'Encore', 'encore' ) . '</h1>';
	if ( null === encore_key() ) {
		$connect = encore_app_url() . '/woocommerce/connect?store_url=' . rawurlencode( encore_store_url() );
		echo '<p>' . esc_html__( 'Connect this store to Encore to see its Encore settings here. WooCommerce asks you to approve the connection.', 'encore' ) . '</p>';
		echo '<p><a class="button button-primary" id="encore-connect" target="_top" href="' . esc_url( $connect ) . '">' . esc_html__( 'Connect to Encore', 'encore' ) . '</a></p>';
	} else {
		$open = encore_open_url();
		echo '<p><a id="encore-new-tab" target="_blank" rel="noopener noreferrer" href="' . esc_url( $open ) . '">' . esc_html__( 'Open Encore in a new tab', 'encore' ) . '</a></p>';
		echo '<iframe id="encore-app" title="' . esc_attr__( 'Encore', 'encore' ) . '" referrerpolicy="no-referrer" src="' . esc_url( $open ) . '" style="width:100%;height:calc(100vh - 220px);min-height:480px;border:1px solid #c3c4c7;background:#fff"></iframe>';
	}
	if ( current_user_can( 'manage_options' ) ) {
		echo '<form method="post" action="' . esc_url( admin_url( 'options.php' ) ) . '">';
		settings_fields( 'encore' );
		echo '<p><label for="encore_app_url">' . esc_html__( 'Encore address', 'encore' ) . '</label> ';
		echo '<input type="url" class="regular-text" id="encore_app_url" name="encore_app_url" value="' . esc_attr( encore_app_url() ) . '"> ';
		submit_button( __( 'Save', 'encore' ), 'secondary', 'submit', false );
		echo '</p></form>';
	}
	echo '</div>';
}

require_once __DIR__ . '/proxy.php';
