// What an admin page of its own needs to talk to Encore's API, loaded before the page's script, which takes it
// from window.encoreAdmin. Inside Shopify every request carries a fresh App Bridge session token; opened from a
// store's own admin it carries the token Encore put in the page (data-session-token on <body>), and a 401 there
// means that token has run out (the message is this script tag's data-expired-label).
window.encoreAdmin = (function () {
  const expired = document.currentScript.dataset.expiredLabel;
  const pageToken = document.body.dataset.sessionToken;

  class SessionExpired extends Error {}

  // The response itself, for what is not JSON (a CSV download); throws SessionExpired when the page's token ran out.
  async function send(path, method, body) {
    const token = window.shopify ? await window.shopify.idToken() : pageToken;
    const options = { method: method || "GET", headers: { Authorization: "Bearer " + token } };
    if (body !== undefined) { options.body = JSON.stringify(body); options.headers["Content-Type"] = "application/json"; }
    const response = await fetch(path, options);
    if (response.status === 401 && !window.shopify) throw new SessionExpired(expired);
    return response;
  }

  // { ok, status, data }: a refusal with an `error` is the caller's to show; anything else unexpected throws.
  async function call(path, method, body) {
    const response = await send(path, method, body);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok && !(data && data.error)) throw new Error(path + ": HTTP " + response.status);
    return { ok: response.ok, status: response.status, data: data || {} };
  }

  // The page's #error line, for what went wrong outside any form.
  function oops(error) {
    const p = document.getElementById("error");
    p.textContent = error instanceof Error ? error.message : String(error);
    p.hidden = false;
  }

  function say(el, text, ok) {
    el.textContent = text || "";
    el.classList.toggle("ok", Boolean(ok));
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (_, k) => (values[k] == null ? "" : String(values[k])));
  }

  return { call, send, oops, say, fill, SessionExpired };
})();
