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

  async function request(path, options) {
    const token = window.shopify ? await window.shopify.idToken() : pageToken;
    const headers = Object.assign({ Authorization: "Bearer " + token }, (options || {}).headers);
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (response.status === 401 && !window.shopify) {
      clearInterval(timer);  // the page's token will not come back to life: stop asking
      throw new SessionExpired(labels.expired);
    }
    return response;
  }

  async function api(path, options) {
    const response = await request(path, options);
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

  // --- journeys: the library, the editor with its live preview, figures, simulation, messaging settings ---------

  const J = JSON.parse(document.getElementById("journeys-labels").textContent);
  const $ = (sel, root) => (root || document).querySelector(sel);

  // A JSON call whose 400 answers (problems, a reason) are data for the page, not failures.
  async function call(path, method, body) {
    const options = { method: method || "GET" };
    if (body !== undefined) { options.body = JSON.stringify(body); options.headers = { "Content-Type": "application/json" }; }
    const response = await request(path, options);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok && !(data && (data.problems || data.error || data.status))) throw new Error(path + ": HTTP " + response.status);
    return { ok: response.ok, status: response.status, data: data || {} };
  }

  function oops(error, where) {
    const p = where || $("#journeys-error");
    p.textContent = error instanceof SessionExpired ? error.message : String(error);
    p.hidden = false;
  }

  function revenue(list) {
    return (list || []).map((r) => money(r.amount, r.currency)).join(", ") || "–";
  }

  async function loadJourneys() {
    const { data } = await call("/api/admin/journeys");
    const body = $("#journeys tbody");
    body.replaceChildren();
    for (const j of data.journeys) {
      const row = body.insertRow();
      row.dataset.key = j.key;
      const name = row.insertCell();
      const open = document.createElement("button");
      open.type = "button"; open.className = "link title"; open.textContent = j.title;
      open.onclick = () => openEditor(j.key).catch((e) => oops(e));
      name.appendChild(open);
      if (j.figures.parked > 0) {
        const badge = document.createElement("span");
        badge.className = "badge warn parked"; badge.textContent = fill(J.parked, { count: count(j.figures.parked) });
        name.appendChild(badge);
      }
      const about = document.createElement("small");
      about.textContent = j.description;
      name.appendChild(about);
      const toggle = document.createElement("input");
      toggle.type = "checkbox"; toggle.className = "switch"; toggle.setAttribute("role", "switch");
      toggle.checked = j.enabled; toggle.setAttribute("aria-label", J.enable + ": " + j.title);
      toggle.onchange = () => call("/api/admin/journeys/" + j.key + "/enabled", "POST", { enabled: toggle.checked })
        .then((r) => { if (!r.ok) throw new Error(r.data.error); })
        .catch((e) => { toggle.checked = !toggle.checked; oops(e); });
      row.insertCell().appendChild(toggle);
      cell(row, count(j.figures.sent.total)).dataset.k = "sent";
      cell(row, count(j.figures.clicked)).dataset.k = "clicked";
      cell(row, revenue(j.figures.attributed.revenue)).dataset.k = "revenue";
      const edit = document.createElement("button");
      edit.type = "button"; edit.textContent = J.edit;
      edit.onclick = open.onclick;
      row.insertCell().appendChild(edit);
    }
    $("#journeys-error").hidden = true;
  }

  // --- the editor ---

  let current = null;

  function span(value, input, unit) {
    input.value = value ? value.value : "";
    unit.value = value ? value.unit : "days";
  }

  function field(root, name) { return root.querySelector('[data-f="' + name + '"]'); }

  function setParts(root, parts) {
    for (const part of ["subject", "html", "text", "sms"]) field(root, part).value = (parts || {})[part] || "";
  }

  function parts(root) {
    const out = {};
    for (const part of ["subject", "html", "text", "sms"]) out[part] = field(root, part).value;
    return out;
  }

  function list(text) { return text.split(",").map((x) => x.trim()).filter((x) => x); }

  function number(text) { return text === "" ? null : Number(text); }

  function readStep(root, step) {
    const v = (name) => field(root, name).value;
    return {
      key: step.key,
      delay: { value: number(v("delay")) || 0, unit: v("delay-unit") },
      send_at: v("send_at") || null,
      latest: v("latest") === "" ? null : { value: number(v("latest")), unit: v("latest-unit") },
      channel: v("channel"),
      condition: { customer: v("customer"), min_total: v("min_total") || null, max_total: v("max_total") || null,
                   products: list(v("products")), collections: list(v("collections")),
                   segments: list(v("segments")), tiers: list(v("tiers")) },
      incentive: { kind: v("incentive"), value: v("incentive-value"), days: number(v("incentive-days")) || 30 },
      template: field(root, "default").checked ? null : parts(root),
    };
  }

  function clearProblems(root, names) {
    for (const p of root.querySelectorAll(".problem[data-problem]")) {
      if (!names || names.includes(p.dataset.problem)) { p.hidden = true; p.textContent = ""; }
    }
  }

  function problemText(p) {
    return (p.line ? fill(J.line, { line: p.line }) + ": " : "") + p.message;
  }

  // Each problem next to its field (with its line); the rest in the list under the form.
  function showProblems(problems) {
    const general = $("#editor-problems");
    general.replaceChildren();
    for (const p of problems) {
      const root = p.step ? $('#steps [data-step="' + p.step + '"]') : null;
      const slot = root && p.field ? root.querySelector('.problem[data-problem="' + p.field + '"]') : null;
      if (slot) {
        slot.textContent = slot.hidden ? problemText(p) : slot.textContent + " · " + problemText(p);
        slot.hidden = false;
      } else {
        const li = document.createElement("li");
        li.textContent = (p.step ? p.step + ": " : "") + problemText(p);
        general.appendChild(li);
      }
    }
    general.hidden = general.children.length === 0;
  }

  function debounce(fn, ms) {
    let t = null;
    return () => { clearTimeout(t); t = setTimeout(fn, ms); };
  }

  function wireStep(root, step) {
    let asked = 0;
    const state = root.querySelector(".preview-state");
    async function preview() {
      const mine = ++asked;
      state.textContent = J.rendering;
      const r = await call("/api/admin/journeys/" + current.key + "/preview", "POST",
                           { step: step.key, template: parts(root), locale: field(root, "locale").value });
      if (mine !== asked) return;  // a newer edit is on its way
      clearProblems(root, ["subject", "html", "text", "sms"]);
      if (!r.ok) { state.textContent = J.renderFailed; showProblems(r.data.problems || []); return; }
      state.textContent = "";
      root.querySelector(".preview-subject").textContent = r.data.subject;
      root.querySelector(".preview-frame").srcdoc = r.data.html;
    }
    const later = debounce(() => preview().catch((e) => oops(e, state)), 300);
    for (const part of ["subject", "html", "text", "sms"]) {
      field(root, part).addEventListener("input", () => { field(root, "default").checked = false; later(); });
    }
    field(root, "default").addEventListener("change", () => {
      if (field(root, "default").checked) { setParts(root, step.default_source || step.source); later(); }
    });
    field(root, "locale").addEventListener("change", later);
    const status = root.querySelector(".test-status");
    root.querySelector(".test-send").onclick = async () => {
      status.textContent = J.sending;
      try {
        const body = { step: step.key, template: parts(root), locale: field(root, "locale").value };
        if (field(root, "test-to").value) body.to = field(root, "test-to").value;
        const r = await call("/api/admin/journeys/" + current.key + "/test", "POST", body);
        if (r.data.problems) showProblems(r.data.problems);
        status.textContent = r.ok ? fill(J.testSent, { to: r.data.to }) : fill(J.testFailed, { error: r.data.error || "" });
      } catch (e) { oops(e, status); }
    };
    return preview;
  }

  function fillStep(root, step, locale) {
    root.dataset.step = step.key;
    root.querySelector("legend").textContent = fill(J.step, { step: step.key }) +
      (step.wait_for ? " · " + fill(J.waitsFor, { event: step.wait_for }) : "");
    span(step.delay, field(root, "delay"), field(root, "delay-unit"));
    if (!field(root, "delay").value) field(root, "delay").value = "0";
    span(step.latest, field(root, "latest"), field(root, "latest-unit"));
    field(root, "send_at").value = step.send_at || "";
    field(root, "channel").value = step.channel;
    const c = step.condition;
    field(root, "customer").value = c.customer;
    field(root, "min_total").value = c.min_total || "";
    field(root, "max_total").value = c.max_total || "";
    field(root, "products").value = c.products.join(", ");
    field(root, "collections").value = c.collections.join(", ");
    field(root, "segments").value = (c.segments || []).join(", ");
    field(root, "tiers").value = (c.tiers || []).join(", ");
    field(root, "incentive").value = step.incentive.kind;
    field(root, "incentive-value").value = step.incentive.value;
    field(root, "incentive-days").value = step.incentive.days;
    field(root, "default").checked = step.default;
    setParts(root, step.source);
    field(root, "locale").value = ["en", "ko", "ja"].includes(locale) ? locale : "en";
  }

  async function openEditor(key) {
    const { data } = await call("/api/admin/journeys/" + key);
    current = data;
    const section = $("#editor");
    section.hidden = false;
    section.dataset.key = key;
    $("#editor-title").textContent = data.title;
    $("#editor-version").textContent = fill(J.version, { version: data.version });
    $("#editor-description").textContent = data.description;
    $("#holdout").value = data.holdout_percent;
    $("#attribution").value = data.attribution_days;
    $("#save-status").textContent = "";
    $("#simulation").hidden = true;
    $("#simulate-status").textContent = "";
    const steps = $("#steps");
    steps.replaceChildren();
    const previews = [];
    for (const step of data.steps) {
      const root = $("#step-template").content.firstElementChild.cloneNode(true);
      fillStep(root, step, (data.locale || "en").split(/[-_]/)[0]);
      steps.appendChild(root);
      previews.push(wireStep(root, step));
    }
    clearProblems(section);
    showProblems([]);
    section.scrollIntoView({ block: "start" });
    await Promise.all([...previews.map((p) => p()), loadFigures()]);
  }

  $("#editor-close").onclick = () => { $("#editor").hidden = true; current = null; };

  $("#editor-form").onsubmit = async (event) => {
    event.preventDefault();
    const status = $("#save-status");
    const body = { holdout_percent: number($("#holdout").value), attribution_days: number($("#attribution").value),
                   steps: current.steps.map((step) => readStep($('#steps [data-step="' + step.key + '"]'), step)) };
    try {
      const r = await call("/api/admin/journeys/" + current.key, "PUT", body);
      clearProblems($("#editor"));
      if (!r.ok) { showProblems(r.data.problems || [{ message: r.data.error }]); status.textContent = J.invalid; return; }
      showProblems([]);
      status.textContent = fill(J.saved, { version: r.data.version });
      $("#editor-version").textContent = fill(J.version, { version: r.data.version });
      const fresh = (await call("/api/admin/journeys/" + current.key)).data;
      current.steps = fresh.steps;
      current.version = fresh.version;
      loadJourneys().catch((e) => oops(e));
    } catch (e) { oops(e, status); }
  };

  // --- figures ---

  function reasons(ul, counts) {
    ul.replaceChildren();
    const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
    if (!entries.length) { const li = document.createElement("li"); li.textContent = J.none; ul.appendChild(li); }
    for (const [reason, n] of entries) {
      const li = document.createElement("li");
      li.dataset.reason = reason;
      li.textContent = reason + ": " + count(n);
      ul.appendChild(li);
    }
  }

  async function loadFigures() {
    const { data } = await call("/api/admin/journeys/" + current.key + "/figures?days=30");
    const tiles = { sent: count(data.sent.total), opened: count(data.opened), clicked: count(data.clicked),
                    held_out: count(data.held_out), failed: count(data.failed), parked: count(data.parked),
                    orders: count(data.attributed.orders), revenue: revenue(data.attributed.revenue) };
    for (const dd of document.querySelectorAll("#figures dd")) dd.textContent = tiles[dd.dataset.k];
    reasons($("#skipped"), data.skipped.by_reason);
    reasons($("#deferred"), data.deferred.by_reason);
    const l = data.lift;
    $("#lift").textContent = fill(J.lift, { holdout: count(l.holdout.enrollments), holdoutConverted: count(l.holdout.converted),
      treated: count(l.treated.enrollments), treatedConverted: count(l.treated.converted), attributed: count(l.treated.attributed) });
    const table = $("#failed");
    table.hidden = data.problems.length === 0;
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const p of data.problems) {
      const row = body.insertRow();
      row.dataset.message = p.id;
      cell(row, p.id); cell(row, p.status, "status status-" + p.status); cell(row, p.reason); cell(row, p.error);
      const again = document.createElement("button");
      again.type = "button"; again.textContent = J.sendAgain;
      again.onclick = () => api("/api/admin/messages/" + p.id + "/resend", { method: "POST" })
        .then(loadFigures).then(loadJourneys).catch((e) => oops(e));
      row.insertCell().appendChild(again);
    }
  }

  // --- simulation ---

  function local(iso, tz) {  // in the customer's time zone, where the step was planned
    const options = { year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
                      timeZoneName: "short" };
    try { return new Intl.DateTimeFormat(document.documentElement.lang, Object.assign({ timeZone: tz || undefined }, options)).format(new Date(iso)); }
    catch (e) { return when(iso); }
  }

  $("#simulate").onclick = async () => {
    const status = $("#simulate-status");
    const table = $("#simulation");
    status.textContent = J.simulating;
    try {
      const { data } = await call("/api/admin/journeys/" + current.key + "/simulate?days=" + $("#simulate-days").value);
      const body = table.querySelector("tbody");
      body.replaceChildren();
      for (const r of data.rows) {
        const row = body.insertRow();
        row.dataset.kind = r.kind;
        row.dataset.enrollment = r.enrollment;
        cell(row, r.customer); cell(row, local(r.trigger_at, r.timezone)); cell(row, r.step);
        cell(row, r.planned_at ? local(r.planned_at, r.timezone) : "–");
        cell(row, r.send_at ? local(r.send_at, r.timezone) : "–");
        cell(row, r.channel || "–");
        const said = r.outcome.includes(": ") ? r.outcome.slice(r.outcome.indexOf(": ") + 2) : "";
        const outcome = cell(row, J.kinds[r.kind] + (said ? ": " + said : "") + (r.deferred ? " (" + r.deferred + ")" : ""),
                             "outcome outcome-" + r.kind);
        const f = r.facts || {};
        outcome.title = [r.enrollment, "orders_before=" + f.orders_before, "order_total=" + (f.order_total || "–"),
                         "products=" + (f.products || []).join(" "), r.condition === null ? "" : "condition=" + r.condition]
          .filter((x) => x).join("\n");
        cell(row, r.subject || "");
      }
      table.hidden = data.rows.length === 0;
      status.textContent = data.unsupported ? J.unsupported : data.rows.length === 0 ? J.noRows
        : fill(J.rows, { count: count(data.rows.length) }) + (data.truncated ? " " + J.truncated : "");
    } catch (e) { oops(e, status); }
  };

  // --- messaging settings ---

  const settings = $("#messaging");

  async function loadMessaging() {
    const { data } = await call("/api/admin/messaging");
    for (const [name, value] of Object.entries(data)) if (settings.elements[name]) settings.elements[name].value = value;
  }

  settings.onsubmit = async (event) => {
    event.preventDefault();
    const status = $("#messaging-status");
    const body = {};
    for (const el of settings.elements) {
      if (!el.name || el.readOnly) continue;
      body[el.name] = el.type === "number" ? number(el.value) : el.value;
    }
    try {
      const r = await call("/api/admin/messaging", "PUT", body);
      status.className = r.ok ? "ok" : "problem";
      status.textContent = r.ok ? J.settingsSaved : r.data.error;
    } catch (e) { oops(e, status); }
  };

  // --- import orders from a CSV file (app/web/csv_import.py): the counts and every bad row with its line -------

  const csvSaid = $("#csv-import").dataset;

  function renderCsvReport(data) {
    const status = $("#csv-status");
    const errors = $("#csv-file-errors");
    errors.replaceChildren();
    for (const message of data.file_errors) {
      const li = document.createElement("li");
      li.textContent = message;
      errors.appendChild(li);
    }
    errors.hidden = data.file_errors.length === 0;
    status.className = data.file_errors.length || data.bad_rows.length ? "problem" : "ok";
    status.textContent = data.file_errors.length ? csvSaid.refused : fill(csvSaid.done, {
      orders: count(data.imported_orders), new: count(data.new_orders), customers: count(data.imported_customers),
      bad: count(data.bad_rows.length) });
    const table = $("#csv-bad-rows");
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const bad of data.bad_rows) {
      const row = body.insertRow();
      row.dataset.line = bad.line;
      cell(row, bad.line); cell(row, bad.order == null ? "–" : bad.order); cell(row, bad.problems.join(" · "));
    }
    table.hidden = data.bad_rows.length === 0;
  }

  $("#csv-form").onsubmit = async (event) => {
    event.preventDefault();
    const status = $("#csv-status");
    const file = $("#csv-file").files[0];
    status.className = "";
    if (!file) { status.textContent = csvSaid.choose; return; }
    const body = new FormData();
    body.append("file", file);
    if ($("#csv-form").elements.platform_ids.checked) body.append("platform_ids", "1");
    const button = $("#csv-submit");
    button.disabled = true;
    status.textContent = csvSaid.importing;
    try {
      const response = await request("/api/admin/imports/csv", { method: "POST", body });
      let data = null;
      try { data = await response.json(); } catch (e) { data = null; }
      if (!data || !Array.isArray(data.bad_rows)) throw new Error("/api/admin/imports/csv: HTTP " + response.status);
      renderCsvReport(data);
      if (data.imported_orders) render().catch(show);
    } catch (e) {
      status.className = "problem";
      status.textContent = e instanceof SessionExpired ? e.message : String(e);
    } finally { button.disabled = false; }
  };

  loadJourneys().catch((e) => oops(e));
  loadMessaging().catch((e) => oops(e));

  document.getElementById("export-download").onclick = () => {
    // Everything the shop owns as one ZIP (app/exports.py), fetched with the session token, saved as a file.
    const button = document.getElementById("export-download");
    const status = document.getElementById("export-status");
    const format = document.getElementById("export-format").value;
    button.disabled = true;
    status.textContent = document.getElementById("export-all").dataset.preparing;
    api("/api/admin/export.zip?format=" + encodeURIComponent(format)).then((r) => r.blob()).then((blob) => {
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob); a.download = "encore-export-" + format + ".zip"; a.click();
      status.textContent = "";
    }).catch((e) => { status.textContent = e instanceof SessionExpired ? e.message : String(e); })
      .finally(() => { button.disabled = false; });
  };
  document.getElementById("history-retry").onclick = () =>
    api("/api/admin/history/retry", { method: "POST" }).then(render).catch(show);
  render().catch(show);
  timer = setInterval(() => render().catch(show), 3000);
})();
