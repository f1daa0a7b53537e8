"""The WooCommerce connector's pure half: webhook verification and payload translation (not registered yet)."""
