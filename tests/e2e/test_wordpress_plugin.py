"""The WordPress companion plugin in a real WordPress, in a real headless Chromium, against Encore over HTTP.

WordPress is Debian's `wordpress` package (copied into a temporary directory with a wp-config.php of our own,
since Debian's reads /etc/wordpress), served by PHP's built-in server, on a database of its own in the local
MariaDB. WooCommerce is not installed: the tests create its `woocommerce_api_keys` table and the row its
wc-auth would have created for Encore, with the consumer secret Encore holds for the store. Skipped, saying
why, when php (with mysqli), the wordpress package or MariaDB is missing (`make system-deps` installs the
first two).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from sqlalchemy import select

from app import create_app
from app.bootstrap import Container
from app.config import Settings
from app.db.models import InboxRow, InstallNonce, Shop
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

WORDPRESS = Path(os.environ.get("ENCORE_WORDPRESS", "/usr/share/wordpress"))
PLUGIN = Path(__file__).resolve().parents[2] / "connectors" / "woocommerce" / "wordpress" / "encore"
MARIADB_HOST, MARIADB_PORT = os.environ.get("ENCORE_MARIADB_HOST", "127.0.0.1"), 3306
PASSWORD = "encore-" + secrets.token_hex(8)
EXPIRED = "Your Encore session has expired. Reload the page to continue."
SCREENSHOT = "/tmp/encore-wordpress.png"

# A command-line helper that drives the site through WordPress's own API. It lives outside the web root.
TOOL = r"""<?php
mysqli_report( MYSQLI_REPORT_OFF );
[ , $root, $command ] = $argv;
$args = array_slice( $argv, 3 );
if ( 'create-db' === $command || 'drop-db' === $command ) {
	[ $host, $port, $name ] = $args;
	$db = @new mysqli( $host, 'root', '', '', (int) $port );
	if ( $db->connect_errno ) {
		fwrite( STDERR, $db->connect_error );
		exit( 3 );
	}
	if ( 'create-db' === $command ) {
		// Databases of runs that were killed before their teardown: named encore_wp_<unix time>_<random>.
		$all = $db->query( "SHOW DATABASES LIKE 'encore\\_wp\\_%'" );
		while ( $all && ( $row = $all->fetch_row() ) ) {
			if ( preg_match( '/^encore_wp_([0-9]+)_[0-9a-f]+$/', $row[0], $m ) && (int) $m[1] < time() - 3600 ) {
				$db->query( 'DROP DATABASE `' . $row[0] . '`' );
			}
		}
	}
	$ok = $db->query( ( 'create-db' === $command ? 'CREATE DATABASE `' : 'DROP DATABASE IF EXISTS `' ) . $name . '`' );
	exit( $ok ? 0 : 4 );
}
if ( 'install' === $command ) {
	define( 'WP_INSTALLING', true );
}
require $root . '/wp-load.php';
global $wpdb;
$keys = $wpdb->prefix . 'woocommerce_api_keys';
switch ( $command ) {
	case 'install':
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$installed = wp_install( 'Encore Test Store', 'admin', 'admin@encore.test', false, '', $args[0] );
		update_option( 'active_plugins', array( 'encore/encore.php' ) );
		echo json_encode( $installed['user_id'] );
		break;
	case 'option':
		update_option( $args[0], $args[1] );
		echo json_encode( get_option( $args[0] ) );
		break;
	case 'user-locale':
		update_user_meta( (int) $args[0], 'locale', $args[1] );
		break;
	case 'create-keys-table':
		// The table as WooCommerce creates it: WC_Install::get_schema (woocommerce/includes/class-wc-install.php).
		$wpdb->query(
			"CREATE TABLE IF NOT EXISTS {$keys} (
  key_id BIGINT UNSIGNED NOT NULL auto_increment,
  user_id BIGINT UNSIGNED NOT NULL,
  description varchar(200) NULL,
  permissions varchar(10) NOT NULL,
  consumer_key char(64) NOT NULL,
  consumer_secret char(43) NOT NULL,
  nonces longtext NULL,
  truncated_key char(7) NOT NULL,
  last_access datetime NULL default null,
  PRIMARY KEY  (key_id),
  KEY consumer_key (consumer_key),
  KEY consumer_secret (consumer_secret)
) " . $wpdb->get_charset_collate()
		);
		break;
	case 'drop-keys-table':
		$wpdb->query( "DROP TABLE IF EXISTS {$keys}" );
		break;
	case 'add-key':
		// The row WC_Auth::create_keys (woocommerce/includes/class-wc-auth.php) inserts for app_name "Encore":
		// the consumer key hashed as wc_api_hash() does, the secret in plain text, the key's last 7 characters.
		[ $app, $consumer_key, $consumer_secret ] = $args;
		$wpdb->insert(
			$keys,
			array(
				'user_id'         => 1,
				'description'     => sprintf( '%s - API (%s)', $app, gmdate( 'Y-m-d H:i:s' ) ),
				'permissions'     => 'read_write',
				'consumer_key'    => hash_hmac( 'sha256', $consumer_key, 'wc-api' ),
				'consumer_secret' => $consumer_secret,
				'truncated_key'   => substr( $consumer_key, -7 ),
			),
			array( '%d', '%s', '%s', '%s', '%s', '%s' )
		);
		echo json_encode( $wpdb->insert_id );
		break;
	case 'delete-keys':
		$wpdb->query( "DELETE FROM {$keys}" );
		break;
	case 'create-user':
		// A shopper: WooCommerce's customers are WordPress users, and their customer id is the user id.
		[ $login, $password ] = $args;
		$user = wp_insert_user(
			array(
				'user_login' => $login,
				'user_pass'  => $password,
				'user_email' => "{$login}@encore.test",
				'role'       => 'subscriber',
			)
		);
		if ( is_wp_error( $user ) ) {
			fwrite( STDERR, $user->get_error_message() );
			exit( 5 );
		}
		echo json_encode( $user );
		break;
	default:
		fwrite( STDERR, "unknown command {$command}" );
		exit( 2 );
}
"""

CONFIG = """<?php
define( 'DB_NAME', '{db}' );
define( 'DB_USER', 'root' );
define( 'DB_PASSWORD', '' );
define( 'DB_HOST', '{host}:{port}' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
{salts}
$table_prefix = 'wp_';
define( 'WP_HOME', '{url}' );
define( 'WP_SITEURL', '{url}' );
define( 'WP_DEBUG', true );
define( 'WP_DEBUG_DISPLAY', false );
define( 'WP_DEBUG_LOG', '{log}' );
define( 'DISABLE_WP_CRON', true );
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _requirements() -> str:
    """The php binary, or skip saying what is missing."""
    php = shutil.which("php")
    if php is None:
        pytest.skip("php is absent: install php-cli and php-mysql (make system-deps) to test the WordPress plugin")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, check=True, timeout=30).stdout.split()
    if "mysqli" not in modules:
        pytest.skip("php has no mysqli: install php-mysql (make system-deps) to test the WordPress plugin")
    if not (WORDPRESS / "wp-load.php").exists():
        pytest.skip(f"{WORDPRESS} is absent: install Debian's wordpress package (make system-deps)")
    try:
        socket.create_connection((MARIADB_HOST, MARIADB_PORT), timeout=3).close()
    except OSError:
        pytest.skip(f"no MariaDB answers on {MARIADB_HOST}:{MARIADB_PORT}")
    return php


@dataclass
class WordPress:
    php: str
    root: Path
    tool: Path
    url: str
    log: Path

    def run(self, *args: str) -> Any:
        done = subprocess.run([self.php, str(self.tool), str(self.root), *args], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"{args[0]} failed ({done.returncode}): {done.stdout} {done.stderr}"
        return json.loads(done.stdout) if done.stdout.strip() else None

    @property
    def admin_page(self) -> str:
        return f"{self.url}/wp-admin/admin.php?page=encore"

    def plugin_notices(self) -> list[str]:
        """PHP notices, warnings and errors that name the plugin (WordPress core has its own on PHP 8)."""
        text = self.log.read_text() if self.log.exists() else ""
        return [line for line in text.splitlines() if "plugins/encore/" in line]


@pytest.fixture(scope="module")
def wordpress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WordPress]:
    php = _requirements()
    base = tmp_path_factory.mktemp("wordpress")
    root, tool, log = base / "site", base / "tool.php", base / "debug.log"
    shutil.copytree(WORDPRESS, root, symlinks=False, ignore_dangling_symlinks=True,
                    ignore=shutil.ignore_patterns("wp-config.php", ".htaccess"))
    shutil.copytree(PLUGIN, root / "wp-content" / "plugins" / "encore")
    tool.write_text(TOOL)
    port, db = _free_port(), f"encore_wp_{int(time.time())}_{secrets.token_hex(4)}"
    url = f"http://127.0.0.1:{port}"
    salts = "\n".join(f"define( '{name}', '{secrets.token_hex(32)}' );" for name in (
        "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY", "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT",
        "NONCE_SALT"))
    (root / "wp-config.php").write_text(CONFIG.replace("{db}", db).replace("{host}", MARIADB_HOST).replace(
        "{port}", str(MARIADB_PORT)).replace("{salts}", salts).replace("{url}", url).replace("{log}", str(log)))
    site = WordPress(php, root, tool, url, log)
    created = subprocess.run([php, str(tool), str(root), "create-db", MARIADB_HOST, str(MARIADB_PORT), db],
                             capture_output=True, text=True, timeout=60)
    if created.returncode != 0:
        pytest.skip(f"MariaDB on {MARIADB_HOST}:{MARIADB_PORT} refused to create a database for root: {created.stderr}")
    server: subprocess.Popen[bytes] | None = None
    try:
        site.run("install", PASSWORD)  # before the server runs: WordPress finds no pretty permalinks and keeps plain ones
        with (base / "php-server.log").open("wb") as out:
            # A session of its own: the workers PHP forks are stopped with it, as one process group.
            server = subprocess.Popen([php, "-S", f"127.0.0.1:{port}", "-t", str(root)], stdout=out, stderr=subprocess.STDOUT,
                                      env={**os.environ, "PHP_CLI_SERVER_WORKERS": "4"}, start_new_session=True)
        _wait_for(f"{url}/wp-login.php", server)
        yield site
    finally:
        if server is not None:
            _stop(server)
        subprocess.run([php, str(tool), str(root), "drop-db", MARIADB_HOST, str(MARIADB_PORT), db],
                       capture_output=True, timeout=60, check=False)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (PHP's workers too), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue
        try:  # the master is gone; wait for its workers
            for _ in range(200):
                os.killpg(server.pid, 0)
                time.sleep(0.05)
        except ProcessLookupError:
            return


def _wait_for(url: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        assert server.poll() is None, "php -S exited"
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered 200")


@dataclass
class Encore:
    server: LiveServer
    c: Container
    shop_id: int
    consumer_key: str
    consumer_secret: str


@pytest.fixture
def encore(settings: Settings, make_container: Any, wordpress: WordPress) -> Iterator[Encore]:
    """Encore over HTTP, with the WordPress site connected as a WooCommerce store (the keys wc-auth would have
    posted, sealed); the site starts without WooCommerce's key table, its plugin pointed at this Encore."""
    c: Container = make_container(settings)
    server = LiveServer(create_app(settings, container=c))
    c.settings = settings.with_(app_url=server.url)
    key, secret = f"ck_{secrets.token_hex(20)}", f"cs_{secrets.token_hex(20)}"  # as wc_rand_hash() makes them
    with c.sessions() as s, s.begin():
        shop = Shop(platform="woocommerce", domain=wordpress.url, name="Encore Test Store", api_key=c.vault.seal(key),
                    api_secret=c.vault.seal(secret), installed_at=datetime.now(UTC))
        s.add(shop)
        s.flush()
        for status in ("done", "done", "parked"):
            s.add(InboxRow(shop_id=shop.id, platform="woocommerce", topic="order.created", body=b"{}", status=status,
                           event_id=secrets.token_hex(8)))
        shop_id = shop.id
    wordpress.run("drop-keys-table")
    wordpress.run("user-locale", "1", "")
    assert wordpress.run("option", "encore_app_url", server.url + "/") == server.url  # sanitized: no trailing slash
    yield Encore(server, c, shop_id, key, secret)
    server.stop()


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def log_in(page: Any, wp: WordPress, login: str = "admin", password: str = PASSWORD) -> None:
    """Sign in through wp-login.php as a person would.

    The login page runs a timer 200 ms after it loads (wp_attempt_focus) that focuses and selects a field, and
    clears the password field when the page came back with a user name in it; and user-profile.js disables the
    password field if it finds it hidden when it binds. CI once posted an empty password. So: wait until the
    timer has focused the user name field, fill, check both fields hold what was typed and the password field
    will be submitted, and only then press the button (or load the page again).
    """
    for _ in range(3):
        page.goto(f"{wp.url}/wp-login.php")
        page.wait_for_function("document.activeElement && document.activeElement.id === 'user_login'")
        page.fill("#user_login", login)
        page.fill("#user_pass", password)
        if (page.input_value("#user_login") != login or page.input_value("#user_pass") != password
                or not page.is_enabled("#user_pass")):
            continue
        with page.expect_navigation():
            page.click("#wp-submit")
        if "wp-login.php" not in page.url:
            return
    error = page.locator("#login_error").all_inner_texts()
    raise AssertionError(f"WordPress did not sign in: {page.url} {error}")


def _sign_ins(c: Container) -> list[InstallNonce]:
    with c.sessions() as s:
        return list(s.scalars(select(InstallNonce).where(InstallNonce.platform == "wordpress")))


def test_the_plugin_shows_encore_in_wordpress_admin_and_falls_back_to_connect(
        wordpress: WordPress, encore: Encore, page: Any, console: list[str]) -> None:
    wp, expect = wordpress, _expect()
    log_in(page, wp)

    # WooCommerce's table does not even exist: the page offers to connect.
    page.goto(wp.admin_page)
    expect(page.locator("#encore-connect")).to_be_visible()
    expect(page.locator("#encore-app")).to_have_count(0)

    # The store connected: Encore's admin renders in the frame, its API calls made with the page's session.
    wp.run("create-keys-table")
    wp.run("add-key", "Another App", f"ck_{secrets.token_hex(20)}", f"cs_{secrets.token_hex(20)}")
    wp.run("add-key", "Encore", encore.consumer_key, encore.consumer_secret)
    with page.expect_response(lambda r: r.url.startswith(f"{encore.server.url}/woocommerce/admin?")) as framed:
        page.goto(wp.admin_page)
    assert framed.value.status == 200
    assert framed.value.headers["content-security-policy"].startswith(f"frame-ancestors {wp.url}; ")  # app/web/csp.py
    app = page.frame_locator("#encore-app")
    expect(app.locator("#shop-name")).to_have_text("Encore Test Store")
    tiles = {k: app.locator(f'#health dd[data-k="{k}"]') for k in ("received", "done", "pending", "parked")}
    for key, value in {"received": "3", "done": "2", "pending": "0", "parked": "1"}.items():
        expect(tiles[key]).to_have_text(value)
    expect(app.locator("#parked tbody tr")).to_have_count(1)
    expect(app.locator("#error")).to_be_hidden()
    expect(app.locator("html")).to_have_attribute("lang", "en")
    [signed_in] = _sign_ins(encore.c)
    assert signed_in.shop_domain == wp.url and signed_in.used_at is not None
    expect(page.locator("#encore-connect")).to_have_count(0)
    page.screenshot(path=SCREENSHOT, full_page=True)

    # The fallback: the same admin in a new tab, with a token of its own.
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Open Encore in a new tab").click()
    tab = opened.value
    expect(tab.locator("#shop-name")).to_have_text("Encore Test Store")
    expect(tab.locator('#health dd[data-k="received"]')).to_have_text("3")
    assert tab.url.startswith(f"{encore.server.url}/woocommerce/admin?token=")
    assert len(_sign_ins(encore.c)) == 2
    spent = requests.get(tab.url, timeout=10)  # the token in its address opens nothing a second time
    assert spent.status_code == 401 and "used already" in spent.text
    # When the page's session ends, it says so instead of failing silently.
    tab.route("**/api/admin/overview", lambda route: route.fulfill(status=401, content_type="application/json",
                                                                    body='{"error": "invalid session token"}'))
    expect(tab.locator("#error")).to_have_text(EXPIRED)
    tab.close()

    # WooCommerce's key for Encore is gone (revoked): back to the connect button, which starts wc-auth.
    wp.run("delete-keys")
    page.goto(wp.admin_page)
    connect = page.get_by_role("link", name="Connect to Encore")
    expect(connect).to_be_visible()
    expect(page.locator("#encore-app")).to_have_count(0)
    authorize = f"{wp.url}/wc-auth/v1/authorize?"
    with page.expect_request(lambda r: r.url.startswith(authorize) and r.is_navigation_request()) as landed:
        connect.click()
    # Without WooCommerce, WordPress answers that address itself (adding its canonical trailing slash).
    page.wait_for_url(re.compile(re.escape(f"{wp.url}/wc-auth/v1/authorize") + r"/?\?"), wait_until="commit")
    query = parse_qs(urlsplit(landed.value.url).query)
    assert (query["app_name"], query["scope"]) == (["Encore"], ["read_write"])
    assert query["callback_url"] == [f"{encore.server.url}/woocommerce/callback"]
    assert query["return_url"] == [f"{encore.server.url}/woocommerce/connected"]
    with encore.c.sessions() as s:
        pending = s.scalars(select(InstallNonce).where(InstallNonce.platform == "woocommerce")).one()
        assert pending.shop_domain == wp.url and query["user_id"][0].startswith(pending.nonce + ".")

    errors = [m for m in console if m.startswith(("error", "pageerror")) and encore.server.url in m]
    assert not errors, console
    assert not wp.plugin_notices()


def test_the_token_the_plugin_mints_signs_in_once(wordpress: WordPress, encore: Encore, page: Any) -> None:
    wp = wordpress
    wp.run("create-keys-table")
    wp.run("add-key", "Encore", f"ck_{secrets.token_hex(20)}", f"cs_{secrets.token_hex(20)}")  # an older connection
    wp.run("add-key", "Encore", encore.consumer_key, encore.consumer_secret)
    wp.run("user-locale", "1", "ko_KR")
    log_in(page, wp)
    html = page.request.get(wp.admin_page).text()  # the page without its frame: nothing minted yet
    assert not _sign_ins(encore.c) and "token=" not in html
    src = re.search(r'<iframe id="encore-app"[^>]* src="([^"]+)"', html)
    assert src, html
    opener = unescape(src.group(1))
    assert opener.startswith(f"{wp.url}/wp-admin/admin-post.php?action=encore_open&_wpnonce=")

    minted = page.request.get(opener, max_redirects=0)
    assert minted.status == 302
    location = minted.headers["location"]
    assert location.startswith(f"{encore.server.url}/woocommerce/admin?token=")
    token = parse_qs(urlsplit(location).query)["token"][0]
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": encore.consumer_key[-7:]}
    claims = jwt.decode(token, encore.consumer_secret, algorithms=["HS256"], audience="encore", issuer=wp.url)
    assert (claims["sub"], claims["locale"], claims["exp"] - claims["iat"]) == ("1", "ko_KR", 60)
    assert re.fullmatch(r"[0-9a-f]{32}", claims["jti"])

    first = requests.get(location, timeout=10)
    assert first.status_code == 200 and '<html lang="ko">' in first.text and "최근 주문" in first.text
    assert first.headers["Content-Security-Policy"].startswith(f"frame-ancestors {wp.url}; ")
    replay = requests.get(location, timeout=10)
    assert (replay.status_code, replay.text) == (401, "This sign-in token was used already. "
                                                      "Open Encore again from your WordPress admin.")
    assert [n.nonce for n in _sign_ins(encore.c)] == [claims["jti"]]

    # Every open mints a fresh token; without the page's nonce, or logged out, nothing is minted.
    again = page.request.get(opener, max_redirects=0).headers["location"]
    assert again != location and requests.get(again, timeout=10).status_code == 200
    bare = page.request.get(f"{wp.url}/wp-admin/admin-post.php?action=encore_open", max_redirects=0)
    assert bare.status == 403 and "location" not in bare.headers
    anonymous = requests.get(opener, allow_redirects=False, timeout=10)
    assert anonymous.status_code == 400 and "Location" not in anonymous.headers
    assert len(_sign_ins(encore.c)) == 2
    assert not wp.plugin_notices()
