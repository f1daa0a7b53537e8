// The analytics page (app/templates/analytics.html, app/web/analytics_admin.py): the last refresh's figures, the
// charts drawn with static/analytics-charts.js, the customers' predictions a page at a time, and each chart's CSV.
// Inside Shopify every request carries a fresh App Bridge session token; opened from a store's own admin it carries
// the token Encore put in the page, so the CSV links are fetched with it and saved from a blob (a plain link would
// go without the token). Money, percentages and dates are formatted by Intl in the page's language.
(function () {
  const L = JSON.parse(document.getElementById("analytics-labels").textContent);
  const C = window.EncoreCharts;
  const lang = document.documentElement.lang;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const API = "/api/admin/analytics";
  const POLL_MS = 3000;
  const ASK_WAIT_MS = 15 * 60 * 1000;  // how long a refresh asked for is awaited before the page stops polling
  const state = { currency: "USD", zone: "UTC", listing: { page: 1, sort: "revenue", order: "desc" }, drawers: new Map(),
                  polling: null, asked: null };

  const { send, fill, oops, SessionExpired } = window.encoreAdmin;  // static/admin-api.js

  // --- formatting ------------------------------------------------------------------------------------------------

  const number = (n, digits) => (n == null ? "–" : new Intl.NumberFormat(lang, { maximumFractionDigits: digits || 0 }).format(n));
  const percent = (share, digits) => (share == null ? "–"
    : new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: digits == null ? 1 : digits }).format(share));
  const signedPercent = (share) => new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1, signDisplay: "exceptZero" }).format(share);
  const points = (share) => new Intl.NumberFormat(lang, { maximumFractionDigits: 1, signDisplay: "exceptZero" }).format(share * 100);
  const list = (items) => new Intl.ListFormat(lang, { type: "conjunction" }).format(items);

  function money(amount, currency, compact) {
    if (amount == null || amount === "") return "–";
    const options = { style: "currency", currency: currency || state.currency };
    if (compact) { options.notation = "compact"; options.maximumFractionDigits = 1; }
    return new Intl.NumberFormat(lang, options).format(Number(amount));
  }

  function month(key) {  // "2026-01" as the language writes a month
    const [y, m] = key.split("-").map(Number);
    return new Intl.DateTimeFormat(lang, { year: "numeric", month: "short", timeZone: "UTC" }).format(Date.UTC(y, m - 1, 1));
  }

  const day = (iso) => (iso ? new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeZone: state.zone }).format(new Date(iso)) : "–");
  const when = (iso) => new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short", timeZone: state.zone }).format(new Date(iso));

  // --- talking to the API ----------------------------------------------------------------------------------------

  // The data of a JSON answer; a refusal throws its error, shown by oops().
  async function call(path, method) {
    const { ok, data } = await window.encoreAdmin.call(path, method);
    if (!ok) throw new Error(data.error);
    return data;
  }

  // A CSV link: fetched with the session token, then saved under the name the server gave it.
  async function download(link) {
    try {
      const response = await send(link.getAttribute("href") + "?locale=" + encodeURIComponent(lang));
      if (!response.ok) throw new Error("HTTP " + response.status);
      const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
      const url = URL.createObjectURL(await response.blob());
      const a = document.createElement("a");
      a.href = url; a.download = name ? name[1] : link.dataset.export + ".csv";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) { oops(e instanceof SessionExpired ? e : new Error(fill(L.downloadFailed, { error: e.message }))); }
  }

  for (const link of document.querySelectorAll("a.csv")) {
    link.addEventListener("click", (event) => { event.preventDefault(); download(link); });
  }

  // --- charts drawn at their box's width, again when it changes ---------------------------------------------------

  const resized = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const box = entry.target, drawer = state.drawers.get(box);
      const width = Math.floor(box.clientWidth);
      if (drawer && width > 0 && width !== drawer.width) { drawer.width = width; box.replaceChildren(drawer.draw(Math.max(280, width))); }
    }
  });

  function chart(box, draw) {
    if (!draw) { state.drawers.delete(box); box.replaceChildren(empty()); return; }
    const width = Math.floor(box.clientWidth);
    state.drawers.set(box, { draw, width });
    box.replaceChildren(draw(Math.max(280, width || 640)));
    resized.observe(box);
  }

  function empty() {
    const p = document.createElement("p");
    p.className = "empty"; p.textContent = L.nothing;
    return p;
  }

  // --- the refresh and the figures from it -----------------------------------------------------------------------

  // While a run is under way, or a refresh was asked for and no newer run has ended yet, the overview is polled.
  function renderRun(run, summary) {
    const status = $("#run-status");
    const running = Boolean(run && run.status === "running");
    const asked = state.asked;
    const waiting = Boolean(asked && Date.now() < asked.until && (!run || run.id === asked.runId || running));
    if (!waiting) state.asked = null;
    if (running) status.textContent = L.running;
    else if (waiting) status.textContent = L.asked;
    else if (run && run.status === "failed") status.textContent = fill(L.failed, { error: run.error || "" });
    else status.textContent = summary ? fill(L.computed, { when: when(summary.computed_at) }) : L.never;
    status.classList.toggle("warn", Boolean(!running && !waiting && run && run.status === "failed"));
    $("#refresh").disabled = running || waiting;
    if ((running || waiting) && !state.polling) {
      state.polling = setTimeout(() => { state.polling = null; load().catch(oops); }, POLL_MS);
    }
  }

  function tiles(dl, values) {
    for (const dd of dl.querySelectorAll("dd")) dd.textContent = values[dd.dataset.k] == null ? "–" : values[dd.dataset.k];
  }

  function renderHistory(summary) {
    const s = summary || {};
    const between = s.time_between_orders || {};
    const clv = s.historic_clv || {};
    tiles($("#history"), {
      customers: summary ? number(s.customers) : null, orders: summary ? number(s.orders) : null,
      revenue: summary ? money(s.revenue, s.currency) : null, repeat_rate: s.repeat_rate == null ? null : percent(s.repeat_rate),
      median_days: between.median_days == null ? null : number(between.median_days, 1),
      clv_mean: clv.mean == null ? null : money(clv.mean, s.currency), clv_median: clv.median == null ? null : money(clv.median, s.currency),
    });
    const model = s.model;
    $("#model-fitted").hidden = !model || model.status !== "fitted";
    $("#model-missing").hidden = !model || model.status === "fitted";
    if (!model) return;
    if (model.status === "fitted") {
      tiles($("#model-fitted"), { customers: number(model.customers), expected_orders_90d: number(model.expected_orders_90d, 1),
                                   predicted_clv_total: money(model.predicted_clv_total, s.currency) });
    } else {
      const needs = model.needs || {};
      const have = { customers: model.customers, repeat_customers: model.repeat_customers };
      const texts = { customers: L.needCustomers, repeat_customers: L.needRepeat };
      const missing = Object.keys(needs).filter((k) => have[k] == null || have[k] < needs[k])
        .map((k) => fill(texts[k] || "{need} " + k + " ({have})", { need: number(needs[k]), have: number(have[k]) }));
      $('#model-missing [data-k="needs"]').textContent = missing.length ? fill(L.needs, { what: list(missing) }) : (model.reason || "");
    }
  }

  function renderRepeat(summary) {
    const months = (summary && summary.repeat_rate_by_month) || [];
    chart($("#repeat-chart"), months.length && ((width) => {
      const rates = months.map((m) => m.rate).filter((r) => r != null);
      const last = months[months.length - 1];
      return C.line({
        width, title: L.repeatRate, tableLabel: L.table,
        desc: fill(L.repeatDesc, { first: month(months[0].month), last: month(last.month), latest: percent(last.rate),
                                   low: percent(Math.min(...rates)), high: percent(Math.max(...rates)) }),
        points: months.map((m) => ({ label: month(m.month), value: m.rate })),
        format: (v) => percent(v, 0),
        columns: [L.month, L.customers, L.returning, L.repeatRate],
        rows: months.map((m) => [month(m.month), number(m.customers), number(m.returning), percent(m.rate)]),
      });
    }));
  }

  // The heatmap is a table: each cell says its share, and its colour's strength is that share over the largest one
  // after the first month (which is 100% by construction and would wash the others out).
  function renderCohorts(summary) {
    const cohorts = (summary && summary.cohorts) || [];
    const table = $("#cohort-table");
    $("#cohorts-empty").hidden = cohorts.length > 0;
    table.hidden = cohorts.length === 0;
    const width = Math.max(0, ...cohorts.map((c) => c.retention.length));
    const later = cohorts.flatMap((c) => c.retention.slice(1)).filter((v) => v != null);
    const top = Math.max(...later, 0.01);
    const head = document.createElement("tr");
    for (const text of [L.cohort, L.customers, ...Array.from({ length: width }, (_, n) => fill(L.monthN, { n }))]) {
      const th = document.createElement("th");
      th.scope = "col"; th.textContent = text;
      head.appendChild(th);
    }
    table.tHead.replaceChildren(head);
    table.tBodies[0].replaceChildren(...cohorts.map((c) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row"; th.textContent = month(c.cohort);
      tr.appendChild(th);
      tr.insertCell().textContent = number(c.size);
      for (let n = 0; n < width; n++) {
        const td = tr.insertCell();
        const v = c.retention[n];
        if (v == null) { td.className = "none"; continue; }
        const level = Math.min(1, n === 0 ? 1 : v / top);
        td.textContent = percent(v);
        td.dataset.value = String(v);
        td.style.setProperty("--level", level.toFixed(3));
        td.classList.toggle("dark", level > 0.55);
        td.title = fill(L.cohortCell, { cohort: month(c.cohort), n, value: percent(v), size: number(c.size) });
      }
      return tr;
    }));
  }

  function renderNps(nps) {
    const months = nps.months;
    const current = months[months.length - 1];
    tiles($("#nps-tiles"), current ? { nps: number(current.nps, 1), answers: number(current.answers),
                                       satisfaction: number(current.satisfaction, 2) } : {});
    if (current && current.too_few) {  // said under the figure, as the chart marks the month
      const note = document.createElement("small");
      note.textContent = fill(L.tooFew, { count: nps.min_answers });
      $('#nps-tiles dd[data-k="nps"]').append(note);
    }
    chart($("#nps-chart"), months.length && ((width) => {
      const readable = months.filter((m) => !m.too_few && m.nps != null);
      const tooFew = fill(L.tooFew, { count: nps.min_answers });
      return C.columns({
        width, title: L.nps, tableLabel: L.table, min: -100, max: 100, format: (v) => number(v),
        desc: fill(L.npsDesc, { first: month(months[0].month), last: month(current.month),
                                latest: readable.length ? number(readable[readable.length - 1].nps, 1) : "–" }),
        bars: months.map((m) => ({ label: month(m.month), value: m.nps, muted: m.too_few,
                                   tip: `${month(m.month)}: ${L.nps} ${number(m.nps, 1)} · ${L.answers} ${number(m.answers)}` +
                                        (m.too_few ? ` · ${tooFew}` : "") })),
        legend: [{ className: "nps", label: L.nps }, { className: "muted", label: "* " + tooFew }],
        columns: [L.month, L.nps, L.answers, L.satisfaction, tooFew],
        rows: months.map((m) => [month(m.month), number(m.nps, 1), number(m.answers), number(m.satisfaction, 2),
                                 m.too_few ? "*" : ""]),
      });
    }));
  }

  function liftName(row) {
    return row.kind === "program" ? (L.programs[row.key] || row.name) : row.name;
  }

  // What a measurement still lacks (app/core/lift.py's shortfalls), or why there is none.
  function liftMissing(lift) {
    if (lift.status === "no_holdout") return L.noHoldout;
    const texts = { "treated size": L.needTreated, "holdout size": L.needHoldout, "both conversions": L.needConversions };
    const missing = (lift.needs || []).map((x) => fill(texts[x.group + " " + x.measure] || "{need} ({have})",
                                                       { need: number(x.need), have: number(x.have) }));
    return L.notEnough + (missing.length ? " — " + fill(L.needs, { what: list(missing) }) : "");
  }

  function renderProof(proof) {
    const body = $("#proof-table tbody");
    body.replaceChildren(...proof.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.key = row.kind + ":" + row.key;
      const lift = row.lift;
      const name = document.createElement("th");
      name.scope = "row"; name.textContent = liftName(row);
      tr.appendChild(name);
      const cells = [["window", fill(L.windowDays, { days: number(row.window_days, 1) })],
                     ["orders", number(row.attributed.orders)], ["revenue", money(row.attributed.revenue, row.attributed.currency)]];
      for (const [k, text] of cells) { const td = tr.insertCell(); td.dataset.k = k; td.textContent = text; }
      const verdict = tr.insertCell();
      verdict.dataset.k = "lift";
      const incremental = tr.insertCell();
      incremental.dataset.k = "incremental";
      if (lift.status === "measured") {
        verdict.append(fill(L.liftPoints, { difference: points(lift.difference),
                                            relative: lift.relative == null ? "–" : signedPercent(lift.relative) }));
        const ci = document.createElement("small");
        ci.textContent = fill(L.ci, { low: points(lift.ci95[0]), high: points(lift.ci95[1]) });
        verdict.append(ci);
        const r = lift.incremental_revenue;
        incremental.append(money(r.value, r.currency));
        const range = document.createElement("small");
        range.textContent = fill(L.ci, { low: money(r.ci95[0], r.currency), high: money(r.ci95[1], r.currency) });
        incremental.append(range);
      } else {
        verdict.className = "not-enough";
        verdict.textContent = liftMissing(lift);
        incremental.textContent = "–";
      }
      return tr;
    }));
    const currency = proof.length ? proof[0].attributed.currency : state.currency;
    chart($("#proof-chart"), proof.length && ((width) => C.paired({
      width, title: L.proofTitle, tableLabel: L.table, format: (v) => money(v, currency, true),
      desc: fill(L.proofDesc, { count: number(proof.length) }),
      groups: proof.map((row) => {
        const r = row.lift.incremental_revenue;
        const a = Number(row.attributed.revenue);
        return { label: liftName(row), a, b: r ? Number(r.value) : null, lo: r ? Number(r.ci95[0]) : null,
                 hi: r ? Number(r.ci95[1]) : null, missing: row.lift.status === "no_holdout" ? L.noHoldout : L.notEnough,
                 tipA: `${L.attributed}: ${money(a, currency)}`,
                 tipB: r ? `${L.incremental}: ${money(r.value, currency)} (${fill(L.ci, { low: money(r.ci95[0], currency), high: money(r.ci95[1], currency) })})` : "" };
      }),
      legend: [{ className: "attributed", label: L.attributed }, { className: "incremental", label: L.incremental },
               { className: "interval", label: L.interval }],
      columns: [L.journeyOrProgram, L.attributed, L.incremental, L.interval],
      rows: proof.map((row) => {
        const r = row.lift.incremental_revenue;
        return [liftName(row), money(row.attributed.revenue, currency), r ? money(r.value, currency) : liftMissing(row.lift),
                r ? fill(L.ci, { low: money(r.ci95[0], currency), high: money(r.ci95[1], currency) }) : ""];
      }),
    })));
  }

  function segmentName(s) {
    return s.kind === "rfm" && s.key.startsWith("rfm:") ? (L.rfm[s.key.slice(4)] || s.name) : s.name;
  }

  function renderSegments(segments) {
    chart($("#segments-chart"), segments.length && ((width) => C.hbars({
      width, title: L.segmentsTitle, tableLabel: L.table, format: (v) => number(v),
      desc: fill(L.segmentsDesc, { count: number(segments.length), name: segmentName(segments[0]), size: number(segments[0].size) }),
      bars: segments.map((s) => ({ label: segmentName(s), value: s.size, tip: `${segmentName(s)}: ${number(s.size)}` })),
      columns: [L.segment, L.kind, L.customers],
      rows: segments.map((s) => [segmentName(s), L.kinds[s.kind] || s.kind, number(s.size)]),
    })));
  }

  async function load() {
    const data = await call(API + "/overview");
    state.currency = data.shop.currency;
    state.zone = data.shop.timezone;
    renderRun(data.run, data.summary);
    renderHistory(data.summary);
    renderRepeat(data.summary);
    renderCohorts(data.summary);
    renderNps(data.nps);
    renderProof(data.proof);
    renderSegments(data.segments);
    await loadCustomers();
  }

  $("#refresh").onclick = async () => {
    $("#refresh").disabled = true;
    try {
      const answer = await call(API + "/refresh", "POST");
      // Asked: awaited is a run newer than the newest now. Not asked, a run is under way: its end is awaited.
      state.asked = { runId: answer.asked ? (answer.run ? answer.run.id : null) : -1, until: Date.now() + ASK_WAIT_MS };
      await load();
    } catch (e) { $("#refresh").disabled = false; oops(e); }
  };

  // --- customers and their predictions ---------------------------------------------------------------------------

  function renderSortHeaders() {
    for (const th of document.querySelectorAll("#customer-table th[data-sort]")) {
      const active = th.dataset.sort === state.listing.sort;
      th.setAttribute("aria-sort", active ? (state.listing.order === "asc" ? "ascending" : "descending") : "none");
      if (!th.querySelector("button")) {
        const b = document.createElement("button");
        b.type = "button"; b.className = "sort"; b.textContent = th.textContent;
        b.setAttribute("aria-label", fill(L.sortBy, { column: th.textContent }));
        b.onclick = () => {
          const same = state.listing.sort === th.dataset.sort;
          state.listing = { page: 1, sort: th.dataset.sort, order: same && state.listing.order === "desc" ? "asc" : "desc" };
          loadCustomers().catch(oops);
        };
        th.replaceChildren(b);
      }
    }
  }

  async function loadCustomers() {
    const q = new URLSearchParams({ page: state.listing.page, sort: state.listing.sort, order: state.listing.order });
    const data = await call(API + "/customers?" + q);
    renderSortHeaders();
    const body = $("#customer-table tbody");
    body.replaceChildren(...data.customers.map((x) => {
      const tr = document.createElement("tr");
      tr.dataset.id = x.id;
      const who = document.createElement("th");
      who.scope = "row";
      who.textContent = x.name || x.email || "#" + x.id;
      if (x.name && x.email) { const small = document.createElement("small"); small.textContent = x.email; who.append(small); }
      tr.appendChild(who);
      const cells = [["orders", number(x.orders)], ["revenue", money(x.revenue, data.currency)],
                     ["segment", L.rfm[x.rfm.segment] || x.rfm.segment], ["last_order_at", day(x.last_order_at)],
                     ["p_alive", percent(x.p_alive, 0)], ["expected_orders_90d", number(x.expected_orders_90d, 2)],
                     ["expected_next_order_at", day(x.expected_next_order_at)], ["predicted_clv", money(x.predicted_clv, data.currency)]];
      for (const [k, text] of cells) {
        const td = tr.insertCell();
        td.dataset.k = k; td.textContent = text;
        if (!["segment", "last_order_at", "expected_next_order_at"].includes(k)) td.className = "num";
      }
      return tr;
    }));
    $("#customers-empty").hidden = data.total > 0;
    $("#page-status").textContent = data.total ? fill(L.page, { page: number(data.page), pages: number(data.pages), total: number(data.total) }) : "";
    $("#previous").disabled = data.page <= 1;
    $("#next").disabled = data.page >= data.pages;
  }

  $("#previous").onclick = () => { state.listing.page -= 1; loadCustomers().catch(oops); };
  $("#next").onclick = () => { state.listing.page += 1; loadCustomers().catch(oops); };

  load().catch(oops);
})();
