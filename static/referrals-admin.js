// The referrals view of the loyalty page (the #referrals section of app/templates/loyalty.html; its API is
// app/web/referrals.py): the program's settings, the referrals with why any was blocked, and a staff override.
// The page's nav switches views by the address's fragment: "#referrals" shows this section and hides the loyalty
// program's; anything else shows the loyalty program. This view's data is loaded the first time it is shown.
// Requests go through static/admin-api.js's `call` (the session token, the expired-session refusal).
(function () {
  const L = JSON.parse(document.getElementById("referrals-labels").textContent);
  const lang = document.documentElement.lang;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const section = $("#referrals");
  const settings = $("#referral-settings");
  const state = { loaded: false, staff: null, timezone: null, rows: new Map() };

  // The API refuses a program with one message (the first thing wrong): it is shown at its field.
  const FIELDS = [
    [/^the friend's offer is one of/, "friend_kind"],
    [/offer needs a value|offer value is a number/, "friend_value"],
    [/friend's code is valid for|^friend_valid_days /, "friend_valid_days"],
    [/either points or a reward/, null],  // at whichever the chosen kind of reward is
    [/referrer's points are|^referrer_points /, "referrer_points"],
    [/referrer's reward must be|^referrer_reward_id /, "referrer_reward_id"],
    [/wait before the referrer's reward|^wait_days /, "wait_days"],
    [/^the cap is a whole number|^cap_per_referrer /, "cap_per_referrer"],
    [/cap's window|^cap_window_days /, "cap_window_days"],
    [/^holdout/, "holdout_percent"],
  ];

  const number = (n) => new Intl.NumberFormat(lang).format(n || 0);

  function when(iso) {
    if (!iso) return "";
    const options = { dateStyle: "medium", timeStyle: "short" };
    if (state.timezone) options.timeZone = state.timezone;
    return new Intl.DateTimeFormat(lang, options).format(new Date(iso));
  }

  const { call, oops, say, fill } = window.encoreAdmin; // static/admin-api.js

  function cell(row, text, k) {
    const td = row.insertCell();
    td.textContent = text == null ? "" : String(text);
    if (k) td.dataset.k = k;
    return td;
  }

  // --- the two views ---------------------------------------------------------------------------------------------

  function showView() {
    const referrals = location.hash === "#referrals";
    for (const other of document.querySelectorAll("body > section")) other.hidden = (other === section) !== referrals;
    const current = referrals ? $("#referrals-link") : $("#loyalty-tab");
    for (const link of [$("#referrals-link"), $("#loyalty-tab")]) {
      if (link === current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
    }
    if (referrals && !state.loaded) {
      state.loaded = true;
      load().catch((e) => { state.loaded = false; oops(e); });
    }
  }

  async function load() {
    // The loyalty program's answer names the signed-in staff member (if the session token does) and the store's
    // time zone; the rewards are the catalog a referrer's reward is chosen from.
    const [loyalty, catalog, program] = await Promise.all([
      call("/api/admin/loyalty/program"), call("/api/admin/loyalty/rewards"), call("/api/admin/referrals/program")]);
    state.staff = loyalty.data.staff || null;
    state.timezone = loyalty.data.timezone || null;
    const choice = settings.elements.referrer_reward_id;
    choice.replaceChildren(choice.options[0], ...(catalog.data.rewards || []).map((r) => new Option(r.title, String(r.id))));
    renderProgram(program.data);
    await loadList();
  }

  // --- the program's settings ------------------------------------------------------------------------------------

  function showMode() {
    const f = settings.elements;
    for (const label of settings.querySelectorAll("[data-mode]")) label.hidden = label.dataset.mode !== f.referrer_mode.value;
    f.friend_value.disabled = f.friend_kind.value === "free_shipping";
  }

  function renderProgram(p) {
    const f = settings.elements;
    const text = (v, fallback) => (v == null ? (fallback == null ? "" : String(fallback)) : String(v));
    f.enabled.checked = Boolean(p.enabled);
    f.friend_kind.value = p.friend_kind || "percent";
    f.friend_value.value = text(p.friend_value);
    f.friend_valid_days.value = text(p.friend_valid_days, 30);
    f.referrer_mode.value = p.referrer_reward_id != null ? "reward" : "points";
    f.referrer_points.value = text(p.referrer_points);
    f.referrer_reward_id.value = text(p.referrer_reward_id);
    f.wait_days.value = text(p.wait_days, 30);
    f.cap_per_referrer.value = text(p.cap_per_referrer);
    f.cap_window_days.value = text(p.cap_window_days, 30);
    f.holdout_percent.value = text(p.holdout_percent, 0);
    showMode();
  }

  // A whole number goes as a number; anything else as typed, for the API to refuse with its message.
  function whole(value) {
    const v = value.trim();
    return /^-?\d{1,9}$/.test(v) ? Number(v) : v;
  }

  function programBody() {
    const f = settings.elements;
    const points = f.referrer_mode.value === "points";
    const reward = f.referrer_reward_id.value;
    const cap = f.cap_per_referrer.value.trim();
    return {
      enabled: f.enabled.checked, friend_kind: f.friend_kind.value,
      friend_value: f.friend_kind.value === "free_shipping" ? null : f.friend_value.value.trim(),
      friend_valid_days: whole(f.friend_valid_days.value),
      referrer_points: points ? whole(f.referrer_points.value) : null,
      referrer_reward_id: !points && reward ? Number(reward) : null,
      wait_days: whole(f.wait_days.value),
      cap_per_referrer: cap === "" ? null : whole(cap),
      cap_window_days: whole(f.cap_window_days.value),
      holdout_percent: whole(f.holdout_percent.value),
    };
  }

  function showProblem(message) {
    for (const p of settings.querySelectorAll("[data-problem]")) { p.hidden = true; p.textContent = ""; }
    if (!message) return;
    const found = FIELDS.find(([pattern]) => pattern.test(message));
    let field = found ? found[1] : "other";
    if (found && field === null) field = settings.elements.referrer_mode.value === "points" ? "referrer_points" : "referrer_reward_id";
    const where = settings.querySelector('[data-problem="' + field + '"]');
    where.textContent = field === "other" ? message : L.problems[field] || message;
    where.hidden = false;
  }

  settings.elements.friend_kind.onchange = showMode;
  settings.elements.referrer_mode.onchange = showMode;

  settings.onsubmit = async (event) => {
    event.preventDefault();
    const status = $("#referral-settings-status");
    say(status, L.saving);
    try {
      const r = await call("/api/admin/referrals/program", "PUT", programBody());
      showProblem(r.ok ? null : r.data.error);
      if (!r.ok) { say(status, L.invalid); return; }
      renderProgram(r.data);
      say(status, L.saved, true);
    } catch (e) { say(status, ""); oops(e); }
  };

  // --- the referrals ---------------------------------------------------------------------------------------------

  function rewardText(reward) {
    if (!reward) return "";
    if (reward.points != null) return fill(L.points, { points: number(reward.points) });
    return reward.code ? fill(L.code, { code: reward.code }) : "";
  }

  function fillRow(row, r) {
    state.rows.set(r.id, r);
    row.replaceChildren();
    row.dataset.referral = r.id;
    row.dataset.status = r.status;
    cell(row, when(r.created_at), "at");
    cell(row, "#" + r.referrer, "referrer");
    cell(row, r.friend_email, "friend");
    cell(row, r.order, "order");
    cell(row, L.status[r.status] || r.status, "status");
    const reason = cell(row, r.blocked_reason ? L.reasons[r.blocked_reason] || r.blocked_reason : "", "reason");
    if (r.detail && r.blocked_reason) {
      const detail = document.createElement("small");
      detail.dataset.k = "detail";
      detail.textContent = r.detail;
      reason.appendChild(detail);
    }
    cell(row, rewardText(r.reward), "reward");
    cell(row, r.override ? r.override.staff + ": " + r.override.note : "", "override");
    const action = row.insertCell();
    if (r.status === "blocked") {
      const b = document.createElement("button");
      b.type = "button"; b.className = "link"; b.textContent = L.override;
      b.onclick = () => openOverride(row, r.id);
      action.appendChild(b);
    }
  }

  async function loadList() {
    const status = $("#referral-filter").elements.status.value;
    const r = await call("/api/admin/referrals" + (status ? "?status=" + encodeURIComponent(status) : ""));
    if (!r.ok) { say($("#referral-list-status"), r.data.error); return; }
    say($("#referral-list-status"), "");
    const body = $("#referral-list tbody");
    body.replaceChildren();
    state.rows.clear();
    for (const referral of r.data.referrals) fillRow(body.insertRow(), referral);
    $("#no-referrals").hidden = r.data.referrals.length > 0;
    $("#referral-list").hidden = r.data.referrals.length === 0;
  }

  $("#referral-filter").elements.status.onchange = () => loadList().catch(oops);
  $("#referral-filter").onsubmit = (event) => event.preventDefault();

  // The override's form opens in a row of its own under the referral; one at a time.
  function openOverride(row, id) {
    for (const open of document.querySelectorAll("#referral-list tr.override-row")) open.remove();
    const formRow = document.createElement("tr");
    formRow.className = "override-row";
    formRow.dataset.for = id;
    const td = formRow.insertCell();
    td.colSpan = row.cells.length;
    td.appendChild($("#override-template").content.cloneNode(true));
    row.after(formRow);
    const form = $("form", formRow);
    const problem = $(".problem", form);
    $("[data-staff]", form).hidden = Boolean(state.staff);
    $("[data-cancel]", form).onclick = () => formRow.remove();
    form.elements.note.focus();
    form.onsubmit = async (event) => {
      event.preventDefault();
      const submit = $('button[type="submit"]', form);
      submit.disabled = true;
      try {
        const r = await call("/api/admin/referrals/" + id + "/override", "POST", {
          staff: state.staff || form.elements.staff.value, note: form.elements.note.value });
        problem.textContent = r.ok ? "" : r.data.error;
        problem.hidden = r.ok;
        if (!r.ok) return;
        formRow.remove();
        fillRow(row, r.data);
        say($("#referral-list-status"), fill(L.overridden, { staff: r.data.override ? r.data.override.staff : "" }), true);
      } catch (e) { oops(e); } finally { submit.disabled = false; }
    };
  }

  window.addEventListener("hashchange", showView);
  showView();
})();
