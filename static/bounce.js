// Shopify's session-token bounce (app/templates/bounce.html, after App Bridge): ask App Bridge for a fresh ID token,
// then reload the app with it. A file of its own, as the admin pages' Content-Security-Policy runs no inline script.
(async function () {
  const url = new URL(window.location.href);
  url.searchParams.set("id_token", await window.shopify.idToken());
  window.location.replace(url.toString());
})();
