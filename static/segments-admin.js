// The segments page (app/templates/segments.html, app/web/segments_admin.py): the shop's segments with their sizes,
// a rule builder that previews who matches before saving, and the built-in RFM segments. Requests go through
// static/admin-api.js's `call` (the session token, the expired-session refusal). A refused save changed nothing:
// each rule's problem is shown under that rule.
(function () {
  const L = JSON.parse(document.getElementById("segments-labels").textContent);
  const lang = document.documentElement.lang;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const form = $("#segment-form");
  const state = { segments: [], tiers: [], rfm: [], editing: null };
  const { call, oops, say, fill } = window.encoreAdmin; // static/admin-api.js

  const number = (n) => new Intl.NumberFormat(lang).format(n || 0);
  const when = (iso) => (iso ? new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso)) : L.never);

  function button(text, onclick) {
    const b = document.createElement("button");
    b.type = "button"; b.className = "link"; b.textContent = text; b.onclick = onclick;
    return b;
  }

  // --- the lists -------------------------------------------------------------------------------------------------

  function usedBy(u) {
    const parts = [];
    if (u.rewards.length) parts.push(fill(L.rewards, { names: u.rewards.join(", ") }));
    if (u.journeys.length) parts.push(fill(L.journeys, { names: u.journeys.join(", ") }));
    return parts.length ? parts.join(" · ") : L.nobody;
  }

  function row(body, seg) {
    const tr = body.insertRow();
    tr.dataset.key = seg.key;
    const name = tr.insertCell();
    name.textContent = seg.name;
    name.dataset.k = "name";
    for (const [k, text] of [["key", seg.key], ["size", number(seg.size)], ["refreshed", when(seg.refreshed_at)],
                             ["used", usedBy(seg.used_by)]]) {
      const td = tr.insertCell();
      td.textContent = text;
      td.dataset.k = k;
    }
    if (!seg.editable) return;
    tr.insertCell().append(button(L.edit, () => edit(seg)), " ", button(L.delete, () => remove(seg).catch(oops)));
  }

  async function load() {
    const { data } = await call("/api/admin/segments?locale=" + encodeURIComponent(lang));
    Object.assign(state, { segments: data.segments, tiers: data.tiers, rfm: data.rfm });
    const mine = data.segments.filter((s) => s.editable);
    $("#mine tbody").replaceChildren();
    $("#rfm tbody").replaceChildren();
    for (const seg of mine) row($("#mine tbody"), seg);
    for (const seg of data.segments.filter((s) => !s.editable)) row($("#rfm tbody"), seg);
    $("#no-segments").hidden = mine.length > 0;
  }

  async function remove(seg) {
    if (!window.confirm(fill(L.confirmDelete, { name: seg.name }))) return;
    const r = await call("/api/admin/segments/" + seg.id, "DELETE");
    say($("#list-status"), r.ok ? L.deleted : r.data.used_by ? fill(L.inUse, { uses: usedBy(r.data.used_by) }) : r.data.error, r.ok);
    if (r.ok) { if (state.editing && state.editing.id === seg.id) close(); await load(); }
  }

  // --- the rule builder ------------------------------------------------------------------------------------------

  // What a value is, by field: a number, a list typed with commas, a choice of one, or a choice of several.
  const KINDS = { orders_count: "number", total_spent: "money", last_order: "number", first_order: "number",
                  survey_score: "number", nps: "number", bought_product: "list", bought_collection: "list",
                  consent: "channel", tier: "tiers", rfm_segment: "rfm" };

  function valueInput(field, value) {
    const kind = KINDS[field];
    let el;
    if (kind === "channel" || kind === "tiers" || kind === "rfm") {
      el = document.createElement("select");
      const choices = kind === "channel" ? Object.entries(L.channels).map(([k, name]) => ({ key: k, name }))
        : kind === "tiers" ? state.tiers : state.rfm;
      el.append(...choices.map((c) => new Option(c.name, c.key)));
      el.multiple = kind !== "channel";
      const wanted = new Set(Array.isArray(value) ? value : value == null ? [] : [value]);
      for (const o of el.options) o.selected = wanted.has(o.value);
    } else {
      el = document.createElement("input");
      el.type = "text";
      el.inputMode = kind === "list" ? "text" : "decimal";
      el.placeholder = kind === "list" ? L.idsHint : "";
      el.value = value == null ? "" : Array.isArray(value) ? value.join(", ") : String(value);
    }
    el.name = "value";
    return el;
  }

  function addRule(rule) {
    const li = $("#rule-template").content.firstElementChild.cloneNode(true);
    const field = $('[name="field"]', li);
    const op = $('[name="op"]', li);
    field.append(...Object.keys(L.fields).map((f) => new Option(L.fieldNames[f] || f, f)));
    const setField = (name, wantedOp, value) => {
      field.value = name;
      op.replaceChildren(...L.fields[name].map((o) => new Option(L.ops[o] || o, o)));
      if (wantedOp) op.value = wantedOp;
      $("[data-value] [name=value]", li).replaceWith(valueInput(name, value));
    };
    field.onchange = () => setField(field.value);
    $("[data-remove]", li).onclick = () => li.remove();
    $("#rules").appendChild(li);
    setField(rule.field, rule.op, rule.value);
  }

  function readRule(li) {
    const value = $("[name=value]", li);
    const field = $('[name="field"]', li).value;
    let v;
    if (value.tagName === "SELECT" && value.multiple) v = Array.from(value.selectedOptions, (o) => o.value);
    else if (value.tagName === "SELECT") v = value.value;
    else if (KINDS[field] === "list") v = value.value.split(",").map((x) => x.trim()).filter(Boolean);
    else v = value.value.trim();
    return { field, op: $('[name="op"]', li).value, value: v };
  }

  const readRules = () => ({ match: form.elements.match.value, rules: Array.from($("#rules").children, readRule) });

  function showProblems(problems) {
    const items = Array.from($("#rules").children);
    for (const li of items) { const p = $(".problem", li); p.hidden = true; p.textContent = ""; }
    const rest = [];
    for (const problem of problems || []) {
      const m = /^rules\.(\d+)$/.exec(problem.field || "");
      const li = m ? items[Number(m[1])] : null;
      if (li) { const p = $(".problem", li); p.textContent = problem.message; p.hidden = false; } else rest.push(problem);
    }
    const list = $("#segment-problems");
    list.replaceChildren(...rest.map((p) => { const li = document.createElement("li"); li.textContent = p.message; return li; }));
    list.hidden = rest.length === 0;
  }

  function open(seg) {
    state.editing = seg;
    form.reset();
    showProblems([]);
    say($("#editor-status"), "");
    $("#preview-result").hidden = true;
    $("#editor-title").textContent = seg ? fill(L.editing, { name: seg.name }) : L.newSegment;
    $("[data-new]", form).hidden = Boolean(seg);
    form.elements.name.value = seg ? seg.name : "";
    form.elements.match.value = seg ? seg.rules.match : "all";
    $("#rules").replaceChildren();
    for (const rule of seg ? seg.rules.rules : [{ field: "orders_count", op: ">=", value: "" }]) addRule(rule);
    $("#editor").hidden = false;
    form.elements.name.focus();
  }

  function close() {
    state.editing = null;
    $("#editor").hidden = true;
  }

  const edit = (seg) => open(seg);

  // A preview is of the rules as they were: any change hides it until it is asked for again.
  const stale = () => { $("#preview-result").hidden = true; };
  form.addEventListener("input", stale);
  form.addEventListener("change", stale);

  $("#new-segment").onclick = () => open(null);
  $("#cancel").onclick = close;
  $("#add-rule").onclick = () => addRule({ field: "orders_count", op: ">=", value: "" });

  $("#preview").onclick = async () => {
    say($("#editor-status"), L.previewing);
    try {
      const r = await call("/api/admin/segments/preview", "POST", { rules: readRules() });
      showProblems(r.ok ? [] : r.data.problems || [{ message: r.data.error }]);
      say($("#editor-status"), r.ok ? "" : L.invalid);
      $("#preview-result").hidden = !r.ok;
      if (!r.ok) return;
      $("#preview-size").textContent = fill(L.customers, { count: number(r.data.size) }) + (r.data.size ? " " + L.firstOnes : "");
      $("#preview-list").replaceChildren(...r.data.customers.map((c) => {
        const li = document.createElement("li");
        li.textContent = [c.name, c.email, "#" + c.id].filter(Boolean).join(" · ");
        return li;
      }));
    } catch (e) { oops(e); }
  };

  form.onsubmit = async (event) => {
    event.preventDefault();
    const body = { name: form.elements.name.value, rules: readRules() };
    if (!state.editing && form.elements.key.value.trim()) body.key = form.elements.key.value.trim();
    say($("#editor-status"), L.saving);
    try {
      const r = state.editing ? await call("/api/admin/segments/" + state.editing.id, "PUT", body)
        : await call("/api/admin/segments", "POST", body);
      showProblems(r.ok ? [] : r.data.problems || [{ message: r.data.error }]);
      if (!r.ok) { say($("#editor-status"), r.data.problems ? L.invalid : r.data.error); return; }
      close();
      say($("#list-status"), fill(L.saved, { count: number(r.data.size) }), true);
      await load();
    } catch (e) { oops(e); }
  };

  load().catch(oops);
})();
