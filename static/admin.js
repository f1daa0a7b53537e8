// The admin: inside Shopify every request carries a fresh App Bridge session token; opened from WordPress
// (no App Bridge) it carries the session token Encore put in the page.
(function () {
  const script = document.currentScript;
  const labels = { retry: script.dataset.retryLabel, download: script.dataset.downloadLabel,
                   expired: script.dataset.expiredLabel };
  const said = script.dataset;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (_, k) => (values[k] == null ? "" : String(values[k])));
  }

  function count(n) {
    return new Intl.NumberFormat(document.documentElement.lang).format(n || 0);
  }

  function when(iso) {
    return new Intl.DateTimeFormat(document.documentElement.lang, { dateStyle: "medium", timeStyle: "short" })
      .format(new Date(iso));
  }

  function renderHistory(h) {
    const section = document.getElementById("history");
    section.hidden = !h;
    if (!h) return;
    const line = document.getElementById("history-line");
    const bar = document.getElementById("history-bar");
    const retry = document.getElementById("history-retry");
    section.dataset.status = h.status;
    bar.hidden = h.status === "done" || h.status === "failed";
    bar.value = h.percent || 0;
    retry.hidden = h.status !== "failed";
    if (h.status === "done") line.textContent = fill(said.historyDone, { orders: count(h.orders), customers: count(h.customers) });
    else if (h.status === "failed") line.textContent = fill(said.historyFailed, { error: h.error || "" });
    else if (h.phase === "orders") line.textContent = fill(said.historyOrders, {
      done: count(h.orders), total: h.total_orders == null ? "…" : count(h.total_orders), percent: h.percent || 0 });
    else if (h.phase === "customers" && (h.customers || h.total_customers)) line.textContent = fill(said.historyCustomers, {
      done: count(h.customers), total: h.total_customers == null ? "…" : count(h.total_customers) });
    else line.textContent = said.historyWaiting;
  }

  function renderStoreWebhooks(w) {
    const p = document.getElementById("store-webhooks");
    p.hidden = !w;
    if (!w) return;
    const repaired = (w.created || 0) + (w.reactivated || 0);
    p.className = repaired ? "warn" : "ok";
    p.textContent = repaired ? fill(said.webhooksRepaired, { repaired: repaired, when: when(w.checked_at) })
                             : fill(said.webhooksHealthy, { count: w.healthy || 0, when: when(w.checked_at) });
  }
  const pageToken = document.body.dataset.sessionToken;
  let timer = null;

  class SessionExpired extends Error {}

  async function api(path, options) {
    const token = window.shopify ? await window.shopify.idToken() : pageToken;
    const headers = Object.assign({ Authorization: "Bearer " + token }, (options || {}).headers);
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (response.status === 401 && !window.shopify) {
      clearInterval(timer);  // the page's token will not come back to life: stop asking
      throw new SessionExpired(labels.expired);
    }
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response;
  }

  function cell(row, text, cls) {
    const td = row.insertCell();
    if (cls) { const span = document.createElement("span"); span.className = cls; span.textContent = text; td.appendChild(span); }
    else td.textContent = text == null ? "" : text;
    return td;
  }

  function money(amount, currency) {
    try { return new Intl.NumberFormat(document.documentElement.lang, { style: "currency", currency }).format(Number(amount)); }
    catch (e) { return amount + " " + currency; }
  }

  async function render() {
    const data = await (await api("/api/admin/overview")).json();
    document.getElementById("shop-name").textContent = data.shop.name || data.shop.domain;
    for (const dd of document.querySelectorAll("#health dd")) dd.textContent = data.health[dd.dataset.k];
    renderHistory(data.history);
    renderStoreWebhooks(data.webhooks);
    const orders = document.querySelector("#orders tbody");
    orders.replaceChildren();
    for (const o of data.orders) {
      const row = orders.insertRow();
      row.dataset.order = o.id;
      cell(row, o.name || o.id);
      cell(row, o.status, "status status-" + o.status);
      cell(row, money(o.total, o.currency));
      const td = row.insertCell();
      if (o.tracking) {
        const safe = /^https?:\/\//i.test(o.tracking.url || "");
        const link = document.createElement(safe ? "a" : "span");
        if (safe) { link.href = o.tracking.url; link.target = "_blank"; link.rel = "noopener noreferrer"; }
        link.textContent = o.tracking.number || o.tracking.url || "";
        td.appendChild(link);
      }
    }
    document.getElementById("no-orders").hidden = data.orders.length > 0;
    const parked = document.getElementById("parked");
    parked.hidden = data.parked.length === 0;
    const body = parked.querySelector("tbody");
    body.replaceChildren();
    for (const p of data.parked) {
      const row = body.insertRow();
      cell(row, p.id); cell(row, p.topic); cell(row, p.error);
      const button = document.createElement("button");
      button.textContent = labels.retry;
      button.onclick = () => api("/api/admin/inbox/" + p.id + "/retry", { method: "POST" }).then(render).catch(show);
      row.insertCell().appendChild(button);
    }
    const exports = document.getElementById("exports");
    exports.replaceChildren();
    document.getElementById("no-exports").hidden = data.exports.length > 0;
    for (const e of data.exports) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.textContent = labels.download + " #" + e.id + " (" + e.customer_id + ")";
      button.onclick = () => api("/api/admin/exports/" + e.id).then((r) => r.blob()).then((blob) => {
        const a = document.createElement("a");
        a.href = URL.createObjectURL(blob); a.download = "customer-data-" + e.id + ".json"; a.click();
      }).catch(show);
      li.appendChild(button);
      exports.appendChild(li);
    }
    document.getElementById("error").hidden = true;  // a later poll that succeeds clears a passing failure
  }

  function show(error) {
    const p = document.getElementById("error");
    p.textContent = error instanceof SessionExpired ? error.message : String(error);
    p.hidden = false;
  }

  document.getElementById("history-retry").onclick = () =>
    api("/api/admin/history/retry", { method: "POST" }).then(render).catch(show);
  render().catch(show);
  timer = setInterval(() => render().catch(show), 3000);
})();
