<?php
/**
 * Removing the plugin removes its one option (the storefront route and widget keep nothing of their own). WooCommerce's REST key for Encore stays: revoke it under
 * WooCommerce > Settings > Advanced > REST API.
 *
 * @package Encore
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

delete_option( 'encore_app_url' );
