// The loyalty page (app/templates/loyalty.html, app/web/loyalty_admin.py). Requests go through static/admin-api.js's
// `call` (the session token, the expired-session refusal).
// The API's 400 answers list a message per field: they are shown where the field is, and nothing was saved.
(function () {
  const L = JSON.parse(document.getElementById("loyalty-labels").textContent);
  const lang = document.documentElement.lang;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const state = { program: null, rewards: [], segments: [], customer: null, adjustKey: newKey() };
  const { call, oops, say, fill } = window.encoreAdmin; // static/admin-api.js

  // One key per submitted adjustment: the same submission sent twice (a double click, a retry) adjusts once.
  function newKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  const number = (n) => new Intl.NumberFormat(lang).format(n || 0);
  const signed = (n) => new Intl.NumberFormat(lang, { signDisplay: "always" }).format(n);
  const percent = (share) => share.percent == null ? "–"
    : new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 }).format(Number(share.percent) / 100);

  function when(iso, zone) {
    const options = { dateStyle: "medium", timeStyle: "short" };
    if (zone) options.timeZone = zone;
    return new Intl.DateTimeFormat(lang, options).format(new Date(iso));
  }

  function listProblems(list, problems) {
    list.replaceChildren(...(problems || []).map((p) => {
      const li = document.createElement("li");
      li.textContent = p.message;
      return li;
    }));
    list.hidden = !problems || problems.length === 0;
  }

  function cell(row, text, k) {
    const td = row.insertCell();
    td.textContent = text == null ? "" : String(text);
    if (k) td.dataset.k = k;
    return td;
  }

  function input(type, value, name) {
    const el = document.createElement("input");
    el.type = type; el.value = value == null ? "" : value; el.name = name;
    return el;
  }

  function button(text, onclick, cls) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = text; b.onclick = onclick;
    if (cls) b.className = cls;
    return b;
  }

  const blankToNull = (v) => (v == null || String(v).trim() === "" ? null : String(v).trim());

  // --- figures ---------------------------------------------------------------------------------------------------

  async function loadFigures() {
    const { data } = await call("/api/admin/loyalty/figures?locale=" + encodeURIComponent(lang));
    const tiles = {
      members: number(data.members), outstanding: number(data.outstanding),
      liability: data.liability_text || L.noMoney, point_value: data.point_value_text || "–",
      redemption_recent: percent(data.redemption.recent), redemption_all: percent(data.redemption.all),
      repeat_members: percent(data.repeat.members), repeat_others: percent(data.repeat.others),
      mismatches: data.mismatches === 0 ? L.ledgerOk : fill(L.ledgerWrong, { count: number(data.mismatches) }),
    };
    for (const dd of document.querySelectorAll("#loyalty-figures dd")) dd.textContent = tiles[dd.dataset.k];
    $('#loyalty-figures dd[data-k="mismatches"]').classList.toggle("warn", data.mismatches !== 0);
  }

  // --- the program -----------------------------------------------------------------------------------------------

  const settings = $("#settings");

  function renderProgram(p) {
    state.program = p;
    $("#program-enabled").checked = p.enabled;
    $("#rule-version").textContent = p.version ? fill(L.version, { version: p.version }) : L.noVersion;
    const f = settings.elements;
    f.points_per_unit.value = p.points_per_unit;
    f.confirm_mode.value = p.confirm_after_days == null ? "fulfilment" : "days";
    f.confirm_after_days.value = p.confirm_after_days == null ? "" : p.confirm_after_days;
    f.confirm_after_days.disabled = p.confirm_after_days == null;
    f.expire_after_days.value = p.expire_after_days == null ? "" : p.expire_after_days;
    for (const [action, points] of Object.entries(p.actions)) f["action-" + action].value = points;
    f.stamp_every.value = p.stamp_every == null ? "" : p.stamp_every;
    f.stamp_reward_id.value = p.stamp_reward_id == null ? "" : String(p.stamp_reward_id);
    f.badges_enabled.checked = p.badges_enabled;
    f.tier_basis.value = p.tier_basis;
    f.tier_window_days.value = p.tier_window_days;
    f.tier_grace_days.value = p.tier_grace_days;
    f.holdout_percent.value = p.holdout_percent;
    $("#staff-field").hidden = Boolean(p.staff);
    renderBonuses(p);
  }

  function renderBonuses(p) {
    const body = $("#bonuses tbody");
    body.replaceChildren();
    for (const b of p.bonuses) {
      const row = body.insertRow();
      row.dataset.index = b.index;
      cell(row, "×" + b.multiplier, "multiplier");
      cell(row, when(b.starts_at, p.timezone));
      cell(row, when(b.ends_at, p.timezone));
      cell(row, b.products ? b.products.join(", ") : L.everyProduct);
      cell(row, L.status[b.status], "status");
      const td = row.insertCell();
      if (b.status !== "ended") td.appendChild(button(L.end, () => endBonus(b.index), "link"));
    }
    $("#bonuses").hidden = p.bonuses.length === 0;
  }

  async function loadProgram() {
    renderProgram((await call("/api/admin/loyalty/program")).data);
  }

  function showFieldProblems(form, problems) {
    for (const p of form.querySelectorAll("[data-problem]")) { p.hidden = true; p.textContent = ""; }
    for (const problem of problems || []) {
      const where = form.querySelector('[data-problem="' + problem.field.split(".")[0] + '"]');
      if (!where) continue;
      where.textContent = where.hidden ? problem.message : where.textContent + "\n" + problem.message;
      where.hidden = false;
    }
  }

  async function saveProgram(body, status) {
    say(status, L.saving);
    const r = await call("/api/admin/loyalty/program", "PUT", body);
    showFieldProblems(settings, r.data.problems);
    if (!r.ok) { say(status, r.data.problems ? L.invalid : r.data.error); return false; }
    renderProgram(r.data);
    return true;
  }

  $("#program-enabled").onchange = async (event) => {
    const on = event.target.checked;
    try {
      if (await saveProgram({ enabled: on }, $("#program-status"))) say($("#program-status"), on ? L.on : L.off, true);
      else event.target.checked = !on;
    } catch (e) { event.target.checked = !on; oops(e); }
  };

  settings.elements.confirm_mode.onchange = () => {
    settings.elements.confirm_after_days.disabled = settings.elements.confirm_mode.value !== "days";
  };

  settings.onsubmit = (event) => {
    event.preventDefault();
    const f = settings.elements;
    const actions = {};
    for (const action of Object.keys(state.program.actions)) actions[action] = blankToNull(f["action-" + action].value) || "0";
    const reward = blankToNull(f.stamp_reward_id.value);
    saveProgram({
      points_per_unit: f.points_per_unit.value.trim(),
      confirm_after_days: f.confirm_mode.value === "days" ? f.confirm_after_days.value.trim() : null,
      expire_after_days: blankToNull(f.expire_after_days.value), actions,
      stamp_every: blankToNull(f.stamp_every.value), stamp_reward_id: reward == null ? null : Number(reward),
      badges_enabled: f.badges_enabled.checked, tier_basis: f.tier_basis.value,
      tier_window_days: f.tier_window_days.value.trim(), tier_grace_days: f.tier_grace_days.value.trim(),
      holdout_percent: f.holdout_percent.value.trim(),
    }, $("#settings-status")).then((ok) => { if (ok) say($("#settings-status"), L.saved, true); }).catch(oops);
  };

  $("#bonus-form").onsubmit = async (event) => {
    event.preventDefault();
    const f = event.target.elements;
    try {
      const r = await call("/api/admin/loyalty/bonuses", "POST", {
        multiplier: f.multiplier.value.trim(), starts_at: f.starts_at.value, ends_at: f.ends_at.value,
        products: blankToNull(f.products.value) });
      listProblems($("#bonus-problems"), r.ok ? [] : r.data.problems || [{ message: r.data.error }]);
      say($("#bonus-status"), r.ok ? L.added : L.invalid, r.ok);
      if (r.ok) { event.target.reset(); await loadProgram(); }
    } catch (e) { oops(e); }
  };

  async function endBonus(index) {
    try {
      const r = await call("/api/admin/loyalty/bonuses/" + index + "/end", "POST", { version: state.program.version });
      say($("#bonus-status"), r.ok ? L.saved : r.data.error, r.ok);
      await loadProgram();
    } catch (e) { oops(e); }
  }

  // --- rewards ---------------------------------------------------------------------------------------------------

  function rewardRow(body, r) {
    const row = body.insertRow();
    row.dataset.reward = r.id;
    const title = input("text", r.title, "title");
    const value = input("text", r.value, "value");
    value.disabled = r.kind === "free_shipping";
    const cost = input("number", r.cost, "cost");
    const days = input("number", r.valid_days, "valid_days");
    const on = input("checkbox", "", "enabled");
    on.className = "switch"; on.setAttribute("role", "switch"); on.checked = r.enabled;
    on.setAttribute("aria-label", r.title);
    const segment = segmentChoice(r.segment_id);
    row.insertCell().appendChild(title);
    cell(row, L.kinds[r.kind] || r.kind);
    for (const el of [value, cost, days, segment, on]) row.insertCell().appendChild(el);
    const status = document.createElement("span");
    status.setAttribute("role", "status");
    const save = async (body) => {
      const answer = await call("/api/admin/loyalty/rewards/" + r.id, "PUT", body);
      say(status, answer.ok ? L.saved : answer.data.error, answer.ok);
      if (!answer.ok) return;
      await Promise.all([loadRewards(), loadFigures()]);
    };
    on.onchange = () => save({ enabled: on.checked }).catch(oops);
    const edits = () => {
      const body = { title: title.value, cost: cost.value.trim(), valid_days: days.value.trim(),
                     segment_id: segment.value === "" ? null : Number(segment.value) };
      if (!value.disabled) body.value = value.value.trim();
      return body;
    };
    const td = row.insertCell();
    td.append(button(L.save, () => save(edits()).catch(oops)), " ", status);
  }

  // Who may redeem a reward: every customer, or the members of one segment (app/web/segments_admin.py).
  function segmentChoice(chosen) {
    const select = document.createElement("select");
    select.name = "segment_id";
    select.append(new Option(L.everyCustomer, ""), ...state.segments.map((s) => new Option(s.name, String(s.id))));
    select.value = chosen == null ? "" : String(chosen);
    return select;
  }

  async function loadRewards() {
    const { data } = await call("/api/admin/loyalty/rewards");
    state.rewards = data.rewards;
    state.segments = data.segments || [];
    const formSegment = $("#reward-form").elements.segment_id;
    const keep = formSegment.value;
    formSegment.replaceChildren(...segmentChoice(null).options);
    formSegment.value = state.segments.some((s) => String(s.id) === keep) ? keep : "";
    const body = $("#rewards tbody");
    body.replaceChildren();
    for (const r of data.rewards) rewardRow(body, r);
    $("#no-rewards").hidden = data.rewards.length > 0;
    const kinds = $("#reward-form").elements.kind;
    if (kinds.options.length !== data.kinds.length) {
      kinds.replaceChildren(...data.kinds.map((k) => new Option(L.kinds[k] || k, k)));
    }
    const stamp = settings.elements.stamp_reward_id;
    const chosen = state.program && state.program.stamp_reward_id != null ? String(state.program.stamp_reward_id) : "";
    stamp.replaceChildren(stamp.options[0], ...data.rewards.map((r) => new Option(r.title, String(r.id))));
    stamp.value = chosen;
  }

  $("#reward-form").elements.kind.onchange = (event) => {
    const f = $("#reward-form").elements;
    f.value.disabled = event.target.value === "free_shipping";
    f.product_id.closest("label").hidden = event.target.value !== "free_product";
  };

  $("#reward-form").onsubmit = async (event) => {
    event.preventDefault();
    const f = event.target.elements;
    const body = { title: f.title.value, kind: f.kind.value, cost: f.cost.value.trim(), valid_days: f.valid_days.value.trim() };
    if (!f.value.disabled) body.value = f.value.value.trim();
    if (f.kind.value === "free_product") body.product_id = f.product_id.value.trim();
    if (f.segment_id.value !== "") body.segment_id = Number(f.segment_id.value);
    try {
      const r = await call("/api/admin/loyalty/rewards", "POST", body);
      listProblems($("#reward-problems"), r.ok ? [] : r.data.problems || [{ message: r.data.error }]);
      say($("#reward-status"), r.ok ? L.added : L.invalid, r.ok);
      if (r.ok) { event.target.reset(); await Promise.all([loadRewards(), loadFigures()]); }
    } catch (e) { oops(e); }
  };

  // --- tiers -----------------------------------------------------------------------------------------------------

  function tierRow(t) {
    const row = $("#tiers tbody").insertRow();
    row.dataset.key = t.key || "";
    for (const [name, type, value] of [["name", "text", t.name], ["threshold", "text", t.threshold],
                                        ["multiplier", "text", t.multiplier]]) {
      row.insertCell().appendChild(input(type, value, name));
    }
    const perks = document.createElement("textarea");
    perks.name = "perks"; perks.rows = 2; perks.value = (t.perks || []).join("\n");
    row.insertCell().appendChild(perks);
    row.insertCell().appendChild(button(L.remove, () => row.remove(), "link"));
  }

  async function loadTiers() {
    const { data } = await call("/api/admin/loyalty/tiers");
    $("#tiers tbody").replaceChildren();
    for (const t of data.tiers) tierRow(t);
  }

  $("#tier-add").onclick = () => tierRow({ name: "", threshold: "", multiplier: "1", perks: [] });

  $("#tier-save").onclick = async () => {
    const tiers = Array.from($("#tiers tbody").rows, (row) => {
      const v = (name) => row.querySelector('[name="' + name + '"]').value;
      return { key: row.dataset.key || null, name: v("name"), threshold: v("threshold").trim(),
               multiplier: v("multiplier").trim(), perks: v("perks").split("\n").filter((p) => p.trim()) };
    });
    try {
      const r = await call("/api/admin/loyalty/tiers", "PUT", { tiers });
      listProblems($("#tier-problems"), r.ok ? [] : r.data.problems || [{ message: r.data.error }]);
      say($("#tier-status"), r.ok ? L.saved : L.invalid, r.ok);
      if (r.ok) await loadTiers();
    } catch (e) { oops(e); }
  };

  // --- a customer's ledger ---------------------------------------------------------------------------------------

  function renderLedger(data) {
    state.customer = data.customer.id;
    const c = data.customer;
    $("#ledger-who").textContent = [c.name, c.email, "#" + c.id].filter(Boolean).join(" · ");
    $('#ledger dd[data-k="available"]').textContent = number(data.available);
    $('#ledger dd[data-k="pending"]').textContent = number(data.pending);
    $('#ledger dd[data-k="tier"]').textContent = data.tier ? data.tier.name : L.none;
    $("#staff-field").hidden = Boolean(data.staff);
    const body = $("#entries tbody");
    body.replaceChildren();
    for (const e of data.entries) {
      const row = body.insertRow();
      row.dataset.entry = e.id;
      cell(row, when(e.at), "at");
      cell(row, signed(e.amount), "amount");
      cell(row, L.balances[e.balance] || e.balance, "balance");
      cell(row, number(e.available_after), "available_after");
      cell(row, L.reasons[e.reason] || e.reason, "reason");
      cell(row, e.order, "order");
      cell(row, e.rule_version, "rule_version");
      cell(row, e.staff, "staff");
      cell(row, e.note, "note");
    }
    $("#ledger").hidden = false;
  }

  async function openCustomer(id) {
    const r = await call("/api/admin/loyalty/customers/" + encodeURIComponent(id));
    if (!r.ok) { say($("#customer-status"), r.data.error); return; }
    $("#customer-results").hidden = true;
    say($("#adjust-status"), "");
    $("#adjust-problem").hidden = true;
    renderLedger(r.data);
  }

  $("#customer-search").onsubmit = async (event) => {
    event.preventDefault();
    const q = $("#customer-q").value.trim();
    if (!q) return;
    try {
      const r = await call("/api/admin/loyalty/customers?q=" + encodeURIComponent(q));
      const found = r.ok ? r.data.customers : [];
      say($("#customer-status"), r.ok ? (found.length ? "" : L.noCustomer) : r.data.error);
      $("#ledger").hidden = true;
      const list = $("#customer-results");
      list.replaceChildren(...found.map((c) => {
        const li = document.createElement("li");
        li.appendChild(button([c.name, c.email, "#" + c.id].filter(Boolean).join(" · "), () => openCustomer(c.id).catch(oops), "link"));
        return li;
      }));
      list.hidden = found.length < 2;
      if (found.length === 1) await openCustomer(found[0].id);
    } catch (e) { oops(e); }
  };

  $("#adjust-form").onsubmit = async (event) => {
    event.preventDefault();
    const f = event.target.elements;
    const problem = $("#adjust-problem");
    try {
      const r = await call("/api/admin/loyalty/customers/" + encodeURIComponent(state.customer) + "/adjust", "POST", {
        direction: f.direction.value, points: f.points.value.trim(), note: f.note.value, staff: f.staff.value,
        request_key: state.adjustKey });
      problem.textContent = r.ok ? "" : r.data.error;
      problem.hidden = r.ok;
      if (!r.ok) { say($("#adjust-status"), ""); return; }
      state.adjustKey = newKey();  // this submission is done: the next one is another adjustment
      renderLedger(r.data);
      say($("#adjust-status"), fill(L.adjusted, { points: signed(r.data.adjusted), available: number(r.data.available) }), true);
      f.points.value = ""; f.note.value = "";
      await loadFigures();
    } catch (e) { oops(e); }
  };

  // Rewards first: the stamp card's reward list is filled from them, and the program then picks its reward.
  loadRewards().then(() => Promise.all([loadProgram(), loadTiers(), loadFigures()])).catch(oops);
})();
