/* Encore's storefront loyalty widget: a launcher button in the page's corner opening a panel with the shopper's
 * points, VIP tier, rewards to redeem, codes and history (and referral, badges, streak and stamp card when the
 * store has them). Plain script, no framework: it loads on every page of a storefront, so it stays small.
 *
 * The script tag says where to ask: data-endpoint (same origin as the page, e.g. Shopify's app proxy
 * "/apps/encore" or the WordPress plugin's route), data-locale, and data-nonce (WordPress: sent as X-WP-Nonce).
 * Every word shown comes from the server's `labels`, in the shopper's language; the script has none of its own.
 * Text is set with textContent only, never parsed as HTML: titles, badge names and codes come from the store.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__encoreWidget) return;
  window.__encoreWidget = true;

  var endpoint = (script.getAttribute("data-endpoint") || "/apps/encore").replace(/\/+$/, "");
  var nonce = script.getAttribute("data-nonce");
  var locale = tag(script.getAttribute("data-locale") || document.documentElement.lang || navigator.language);
  var data = null; // the last GET /loyalty answer
  var points = null; // available points from the launcher's read, until the panel's answer comes
  var labels = {};
  var result = null; // the last redemption: {code, status}
  var notice = null; // {text, kind: "error" | "ok"}
  var pendingKeys = {}; // reward id -> request key of a click whose answer never came (retried with the same key)
  var busy = {}; // reward id -> true while its redemption is in flight
  var root, launcher, panel, body;

  // --- words and numbers ------------------------------------------------------------------------------------

  function tag(given) {
    // WordPress says "ko_KR", Intl wants "ko-KR" (and throws on what it cannot read).
    var wanted = String(given || "en").replace(/_/g, "-");
    return safely(function () { return Intl.getCanonicalLocales(wanted)[0] || "en"; }, "en");
  }

  function t(key, values) {
    var text = labels[key] || "";
    return text.replace(/%\((\w+)\)s|%%/g, function (all, name) {
      return name ? String(values && values[name] != null ? values[name] : "") : "%";
    });
  }

  function safely(make, fallback) {
    try { return make(); } catch (e) { return fallback; }
  }

  function number(n) {
    return safely(function () { return new Intl.NumberFormat(locale).format(Number(n)); }, String(n));
  }

  function money(amount) {
    var currency = data && data.currency;
    if (!currency) return number(amount);
    return safely(function () {
      return new Intl.NumberFormat(locale, {style: "currency", currency: currency}).format(Number(amount));
    }, amount + " " + currency);
  }

  function day(iso) {
    return safely(function () {
      return new Intl.DateTimeFormat(locale, {dateStyle: "medium"}).format(new Date(iso));
    }, String(iso).slice(0, 10));
  }

  // --- the DOM -------------------------------------------------------------------------------------------

  function h(tag, attrs, children) {
    var el = document.createElement(tag);
    for (var name in attrs || {}) {
      var value = attrs[name];
      if (value == null || value === false) continue;
      if (name === "text") el.textContent = value;
      else if (name.slice(0, 2) === "on") el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : value);
    }
    (children || []).forEach(function (child) {
      if (child) el.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return el;
  }

  function section(key, heading, children) {
    var id = "enc-h-" + key;
    return h("section", {"class": "enc-section enc-" + key, "aria-labelledby": id},
      [h("h3", {id: id, text: heading})].concat(children));
  }

  function copyButton(value, className) {
    var button = h("button", {type: "button", "class": className || "enc-btn", text: t("copy")});
    button.addEventListener("click", function () {
      var done = function (ok) {
        button.textContent = ok ? t("copied") : t("copy");
        say(ok ? t("copied") : t("copy_failed"));
        if (ok) setTimeout(function () { button.textContent = t("copy"); }, 2000);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(value).then(function () { done(true); }, function () { done(false); });
      } else {
        done(false);
      }
    });
    return button;
  }

  // --- talking to the server ---------------------------------------------------------------------------

  function call(method, path, payload) {
    var headers = {"Accept": "application/json"};
    if (nonce) headers["X-WP-Nonce"] = nonce;
    if (payload) headers["Content-Type"] = "application/json";
    var sep = path.indexOf("?") < 0 ? "?" : "&";
    return fetch(endpoint + path + sep + "locale=" + encodeURIComponent(locale), {
      method: method, headers: headers, credentials: "same-origin",
      body: payload ? JSON.stringify(payload) : undefined
    }).then(function (response) {
      return response.json().then(function (json) { return {status: response.status, body: json || {}}; },
        function () { return {status: response.status, body: {}}; });
    });
  }

  function requestKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  function load() {
    return call("GET", "/loyalty").then(function (answer) {
      if (answer.body.labels) labels = answer.body.labels;
      if (answer.status === 200) data = answer.body;
      else if (answer.body.error === "log_in") data = {logIn: true};
      else data = {failed: answer.body.message || t("load_failed")};
    }, function () {
      data = data && !data.failed ? data : {failed: t("load_failed")};
    });
  }

  function redeem(reward) {
    var id = reward.id;
    if (busy[id]) return;
    busy[id] = true;
    pendingKeys[id] = pendingKeys[id] || requestKey(); // a retried click is the same redemption
    notice = null;
    render();
    send(id, pendingKeys[id], 1).then(function (answer) {
      // A 5xx (the app proxy's answer when Encore's tier is down) settles nothing: the redemption may have been
      // made, so the key is kept and clicking again retries this redemption, as after a network failure.
      if (answer.status < 500) delete pendingKeys[id];
      var ok = answer.status === 200 || answer.status === 201 || answer.status === 202;
      if (ok && answer.body.code) result = {code: answer.body.code, status: answer.body.status};
      else notice = {text: answer.body.message || t("error"), kind: "error"};
      return load();
    }, function () {
      notice = {text: t("error"), kind: "error"}; // the key is kept: clicking again retries this redemption
    }).then(function () {
      delete busy[id];
      render();
      var focus = panel.querySelector(notice ? ".enc-notice" : ".enc-result .enc-code");
      if (focus) focus.focus();
    });
  }

  function send(id, key, retries) {
    return call("POST", "/loyalty/redeem", {reward_id: id, request_key: key}).then(function (answer) {
      if (answer.status >= 500 && retries > 0) return send(id, key, retries - 1);
      return answer;
    }, function (error) {
      if (retries > 0) return send(id, key, retries - 1);
      throw error;
    });
  }

  // --- what the panel shows ----------------------------------------------------------------------------

  function say(text) {
    var live = panel.querySelector(".enc-live"); // announced, without redrawing (and losing focus)
    if (live) live.textContent = text;
  }

  function balance() {
    var points = data.points || {};
    return h("div", {"class": "enc-balance"}, [
      h("div", {"class": "enc-stat"}, [
        h("span", {"class": "enc-num", "data-enc": "available", text: number(points.available || 0)}),
        h("span", {"class": "enc-label", text: t("available")})]),
      h("div", {"class": "enc-stat", title: t("pending_hint")}, [
        h("span", {"class": "enc-num", "data-enc": "pending", text: number(points.pending || 0)}),
        h("span", {"class": "enc-label", text: t("pending")})])
    ]);
  }

  function tier() {
    var tierData = data.tier;
    if (!tierData) return null;
    var next = tierData.next, way;
    if (next) {
      var remaining = tierData.basis === "spend" ? money(next.remaining) : number(next.remaining);
      way = t(tierData.basis === "spend" ? "next_spend" : "next_points", {remaining: remaining, tier: next.name});
    } else {
      way = t("top_tier");
    }
    var reached = Number(tierData.progress) || 0;
    var goal = next ? reached + Number(next.remaining) : reached;
    var perks = tierData.perks || [];
    return section("tier", t("tier"), [
      h("p", {"class": "enc-tier-name", text: tierData.name || t("no_tier")}),
      perks.length ? h("ul", {"class": "enc-perks", "aria-label": t("perks")},
        perks.map(function (perk) { return h("li", {text: perk}); })) : null,
      next ? h("div", {"class": "enc-bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(goal),
        "aria-valuenow": String(reached), "aria-label": way}, [
        fill(goal ? reached / goal : 1)]) : null,
      h("p", {"class": "enc-next", text: way})
    ]);
  }

  function fill(share) {
    var bar = h("span", {"class": "enc-fill"});
    bar.style.width = Math.round(100 * Math.min(1, Math.max(0, share))) + "%"; // CSSOM: allowed under a strict CSP
    return bar;
  }

  function value(reward) {
    if (reward.kind === "amount") return t("value_amount", {amount: money(reward.value)});
    if (reward.kind === "percent") return t("value_percent", {percent: number(reward.value)});
    if (reward.kind === "free_shipping") return t("value_free_shipping");
    if (reward.kind === "free_product") return t("value_free_product");
    return "";
  }

  function rewards() {
    var list = data.rewards || [];
    var available = (data.points || {}).available || 0;
    return section("rewards", t("rewards"), list.length ? [h("ul", {"class": "enc-list"}, list.map(function (reward) {
      var short = reward.cost - available;
      return h("li", {"class": "enc-reward"}, [
        h("div", {"class": "enc-grow"}, [
          h("strong", {text: reward.title}),
          h("span", {"class": "enc-muted", text: value(reward) + " · " + t("points", {points: number(reward.cost)})}),
          !reward.affordable && short > 0 ? h("span", {"class": "enc-muted", text: t("need_more", {points: number(short)})})
            : null]),
        h("button", {type: "button", "class": "enc-btn enc-primary", disabled: !reward.affordable || !!busy[reward.id],
          "aria-label": t("redeem") + ": " + reward.title, onclick: function () { redeem(reward); },
          text: busy[reward.id] ? t("redeeming") : t("redeem")})
      ]);
    }))] : [h("p", {"class": "enc-muted", text: t("no_rewards")})]);
  }

  function redeemed() {
    if (!result) return null;
    return h("div", {"class": "enc-result", role: "group", "aria-label": t("your_code")}, [
      h("span", {"class": "enc-label", text: t("your_code")}),
      h("div", {"class": "enc-row"}, [h("code", {"class": "enc-code", tabindex: "-1", text: result.code}),
        copyButton(result.code)]),
      h("p", {"class": "enc-muted", text: result.status === "issuing" ? t("code_issuing") : t("code_ready")})
    ]);
  }

  function codes() {
    var list = data.codes || [];
    return section("codes", t("codes"), list.length ? [h("ul", {"class": "enc-list"}, list.map(function (c) {
      return h("li", {"class": "enc-row"}, [
        h("div", {"class": "enc-grow"}, [h("code", {text: c.code || ""}),
          h("span", {"class": "enc-muted", text: t("status_" + c.status) + " · " + t("expires", {date: day(c.expires_at)})})]),
        c.status === "restored" || !c.code ? null : copyButton(c.code, "enc-btn enc-small")]);
    }))] : [h("p", {"class": "enc-muted", text: t("no_codes")})]);
  }

  function history() {
    var list = data.history || [];
    return section("history", t("history"), list.length ? [h("ul", {"class": "enc-list"}, list.map(function (e) {
      return h("li", {"class": "enc-row"}, [
        h("div", {"class": "enc-grow"}, [h("span", {text: t("reason_" + e.reason) || e.reason}),
          h("span", {"class": "enc-muted", text: day(e.at)})]),
        h("span", {"class": e.points < 0 ? "enc-minus" : "enc-plus", text: (e.points > 0 ? "+" : "") + number(e.points)})]);
    }))] : [h("p", {"class": "enc-muted", text: t("no_history")})]);
  }

  function referral() {
    var r = data.referral;
    if (!r) return null;
    var share = navigator.share ? h("button", {type: "button", "class": "enc-btn", text: t("share"), onclick: function () {
      navigator.share({title: t("referral"), text: r.friend_offer ? t("referral_friend", {offer: r.friend_offer}) : "",
        url: r.link}).catch(function () {});
    }}) : null;
    return section("referral", t("referral"), [
      r.friend_offer ? h("p", {text: t("referral_friend", {offer: r.friend_offer})}) : null,
      r.referrer_offer ? h("p", {text: t("referral_you", {offer: r.referrer_offer})}) : null,
      h("label", {"for": "enc-ref-link", "class": "enc-label", text: t("referral_link")}),
      h("div", {"class": "enc-row"}, [h("input", {id: "enc-ref-link", "class": "enc-input", readonly: true, value: r.link}),
        copyButton(r.link), share]),
      h("p", {"class": "enc-muted", text: t("referral_stats", {invited: number(r.invited || 0),
        rewarded: number(r.rewarded || 0)})})
    ]);
  }

  function badges() {
    var list = data.badges;
    if (!list || !list.length) return null;
    return section("badges", t("badges"), [h("ul", {"class": "enc-badges"}, list.map(function (b) {
      return h("li", {"class": "enc-badge" + (b.earned_at ? " enc-earned" : "")}, [
        h("strong", {text: b.name}), b.description ? h("span", {text: b.description}) : null,
        h("span", {"class": "enc-muted", text: b.earned_at ? t("badge_earned", {date: day(b.earned_at)}) : t("badge_locked")})]);
    }))]);
  }

  function streak() {
    var s = data.streak;
    if (!s) return null;
    return section("streak", t("streak"), [
      h("p", {"class": "enc-tier-name", text: t("streak_months", {months: number(s.months || 0)})}),
      h("p", {"class": "enc-muted", text: t("streak_best", {best: number(s.best || 0)})})]);
  }

  function stamp() {
    var s = data.stamp;
    if (!s || !s.every) return null;
    var dots = [];
    for (var i = 0; i < s.every; i++) dots.push(h("li", {"class": "enc-dot" + (i < s.stamps ? " enc-on" : "")}));
    return section("stamp", t("stamp"), [
      h("ol", {"class": "enc-stamps", role: "img", "aria-label": t("stamp_progress", {stamps: s.stamps, every: s.every})}, dots),
      h("p", {text: t("stamp_progress", {stamps: number(s.stamps || 0), every: number(s.every)})}),
      s.reward ? h("p", {"class": "enc-muted", text: t("stamp_reward", {reward: s.reward})}) : null,
      s.cards_filled ? h("p", {"class": "enc-muted", text: t("stamp_filled", {count: number(s.cards_filled)})}) : null]);
  }

  function content() {
    if (!data) return [h("p", {"class": "enc-muted", text: t("loading")})];
    if (data.logIn) return [h("div", {"class": "enc-login"}, [h("p", {"class": "enc-tier-name", text: t("log_in")}),
      h("p", {"class": "enc-muted", text: t("log_in_hint")})])];
    if (data.failed) return [h("p", {"class": "enc-notice enc-error", role: "alert", text: data.failed}),
      h("button", {type: "button", "class": "enc-btn", text: t("retry"), onclick: function () { load().then(render); }})];
    if (data.held_out) return [h("p", {"class": "enc-muted enc-held-out", text: t("not_available")}), referral()];
    return [balance(), redeemed(), rewards(), tier(), referral(), stamp(), streak(), badges(), codes(), history()];
  }

  function render() {
    if (!panel) return;
    var shown = data && data.points ? data.points.available : points;
    launcher.textContent = shown == null ? t("launcher") : t("launcher") + " \u00b7 " + t("points", {points: number(shown)});
    panel.querySelector(".enc-title").textContent = t("title");
    panel.querySelector(".enc-close").setAttribute("aria-label", t("close"));
    body.textContent = "";
    if (notice) body.appendChild(h("p", {"class": "enc-notice enc-" + notice.kind, tabindex: "-1",
      role: notice.kind === "error" ? "alert" : "status", text: notice.text}));
    content().forEach(function (el) { if (el) body.appendChild(el); });
    body.appendChild(h("p", {"class": "enc-live enc-sr", "aria-live": "polite"}));
  }

  // --- opening and closing -----------------------------------------------------------------------------

  function open() {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    panel.querySelector(".enc-close").focus();
    load().then(render);
  }

  function close() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  function build() {
    root = h("div", {"class": "enc-root", lang: locale});
    launcher = h("button", {type: "button", "class": "enc-launcher", "aria-expanded": "false",
      "aria-controls": "enc-panel", "aria-haspopup": "dialog"});
    launcher.addEventListener("click", function () { if (panel.hidden) open(); else close(); });
    body = h("div", {"class": "enc-body"});
    panel = h("div", {id: "enc-panel", "class": "enc-panel", role: "dialog", "aria-labelledby": "enc-title", hidden: true}, [
      h("div", {"class": "enc-head"}, [h("h2", {id: "enc-title", "class": "enc-title"}),
        h("button", {type: "button", "class": "enc-close", text: "\u00d7", onclick: close})]),
      body]);
    root.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !panel.hidden) { event.stopPropagation(); close(); }
    });
    root.appendChild(panel);
    root.appendChild(launcher);
    document.body.appendChild(root);
    render();
  }

  function start() {
    // The launcher's light read (the points and the labels) on every page; the panel's full answer only when
    // it is opened. Until the labels come (or when the store has no program) nothing is shown.
    call("GET", "/loyalty/balance").then(function (answer) {
      if (answer.body.labels) labels = answer.body.labels;
      if (!labels.launcher || answer.body.enabled === false) return;
      if (answer.status === 200 && answer.body.points) points = answer.body.points.available;
      build();
    }, function () { /* the store's page goes on without the widget */ });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
