// The follow-up page (app/templates/feedback.html, app/web/feedback_admin.py): low survey answers, open ones first,
// each resolved with a note (and the staff member's name when the session does not say who they are), and the
// shop's routing settings. Requests go through static/admin-api.js's `call` (the session token, the expired-session
// refusal). A refused request changed nothing: its problems are shown where the fields are.
(function () {
  const L = JSON.parse(document.getElementById("feedback-labels").textContent);
  const lang = document.documentElement.lang;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const state = { staff: null, timezone: null };
  const { call, oops, say, fill } = window.encoreAdmin; // static/admin-api.js

  const number = (n) => new Intl.NumberFormat(lang).format(n || 0);

  function when(iso) {
    const options = { dateStyle: "medium", timeStyle: "short" };
    if (state.timezone) options.timeZone = state.timezone;
    return new Intl.DateTimeFormat(lang, options).format(new Date(iso));
  }

  function cell(row, text, k) {
    const td = row.insertCell();
    td.textContent = text == null ? "" : String(text);
    if (k) td.dataset.k = k;
    return td;
  }

  // --- the items -------------------------------------------------------------------------------------------------

  function customer(item) {
    const name = item.customer_name || (item.customer_email ? "" : L.guest);
    return [name, item.customer_email].filter(Boolean).join(" · ");
  }

  function render(data) {
    state.staff = data.staff;
    state.timezone = data.timezone;
    $("#open-count").textContent = fill(L.open, { count: number(data.counts.open) });
    const body = $("#items tbody");
    body.replaceChildren();
    for (const item of data.items) {
      const row = body.insertRow();
      row.dataset.id = item.id;
      row.className = item.status;
      cell(row, when(item.answered_at), "answered");
      cell(row, customer(item), "customer");
      cell(row, item.order_name || item.order_id || "–", "order");
      cell(row, item.score + " / 5", "score");
      cell(row, item.nps == null ? "–" : item.nps + " / 10", "nps");
      cell(row, item.comment || L.noComment, "comment");
      cell(row, L.reasons[item.reason] || item.reason, "reason");
      const alert = cell(row, "", "alert");
      const badge = document.createElement("span");
      badge.className = "status alert-" + item.alert_status;
      badge.textContent = L.alerts[item.alert_status] || item.alert_status;
      if (item.alert_error) badge.title = item.alert_error;
      alert.appendChild(badge);
      if (item.alert_attempts > 1) alert.append(" " + fill(L.attempts, { count: number(item.alert_attempts) }));
      const status = cell(row, L.status[item.status], "status");
      if (item.status === "resolved") {
        const by = document.createElement("small");
        by.textContent = fill(L.resolvedBy, { staff: item.resolved_by, note: item.resolution_note });
        status.append(document.createElement("br"), by);
      }
      const action = row.insertCell();
      if (item.status === "open") {
        const b = document.createElement("button");
        b.type = "button"; b.className = "link"; b.textContent = L.resolve;
        b.onclick = () => openResolve(row, item);
        action.appendChild(b);
      }
    }
    $("#no-items").hidden = data.items.length > 0;
    $("#items").hidden = data.items.length === 0;
  }

  async function load() {
    const status = $("#filter").elements.status.value;
    say($("#list-status"), L.loading);
    const r = await call("/api/admin/feedback" + (status ? "?status=" + encodeURIComponent(status) : ""));
    say($("#list-status"), "");
    render(r.data);
  }

  function openResolve(row, item) {
    if (row.nextElementSibling && row.nextElementSibling.classList.contains("resolve-row")) return;
    row.classList.add("resolving");
    const formRow = row.parentElement.insertRow(row.sectionRowIndex + 1);
    formRow.className = "resolve-row";
    const td = formRow.insertCell();
    td.colSpan = row.cells.length;
    const form = $("#resolve-template").content.firstElementChild.cloneNode(true);
    $("[data-staff]", form).hidden = Boolean(state.staff);
    td.appendChild(form);
    form.elements.note.focus();
    $("[data-cancel]", form).onclick = () => { formRow.remove(); row.classList.remove("resolving"); };
    form.onsubmit = async (event) => {
      event.preventDefault();
      const problem = $(".problem", form);
      try {
        const r = await call("/api/admin/feedback/" + item.id + "/resolve", "POST",
                             { note: form.elements.note.value, staff: form.elements.staff.value });
        if (r.ok || r.status === 409) { await load(); return; }
        const field = r.data.problems && r.data.problems[0] && r.data.problems[0].field;
        problem.textContent = (field && L.problems[field]) || r.data.error;
        problem.hidden = false;
      } catch (e) { oops(e); }
    };
  }

  $("#filter").elements.status.onchange = () => load().catch(oops);

  // --- the settings ----------------------------------------------------------------------------------------------

  const settings = $("#settings");
  const FIELDS = ["low_satisfaction", "low_nps", "high_satisfaction", "high_nps"];

  function renderSettings(data) {
    const f = settings.elements;
    f.emails.value = data.emails.join(", ");
    f.webhook_url.value = data.webhook_url;
    f.webhook_secret.value = data.webhook_secret;
    for (const name of FIELDS) f[name].value = data[name];
  }

  function showProblems(problems) {
    for (const p of settings.querySelectorAll("[data-problem]")) { p.hidden = true; p.textContent = ""; }
    for (const { field, message } of problems || []) {
      const p = settings.querySelector('[data-problem="' + field + '"]') || settings.querySelector('[data-problem="settings"]');
      p.textContent = L.problems[field] || message;
      p.hidden = false;
    }
  }

  settings.onsubmit = async (event) => {
    event.preventDefault();
    const f = settings.elements;
    const body = { emails: f.emails.value, webhook_url: f.webhook_url.value.trim() };
    for (const name of FIELDS) body[name] = f[name].value.trim();
    say($("#settings-status"), L.saving);
    try {
      const r = await call("/api/admin/feedback/settings", "PUT", body);
      showProblems(r.ok ? [] : r.data.problems);
      if (!r.ok) { say($("#settings-status"), L.invalid); return; }
      renderSettings(r.data);
      say($("#settings-status"), L.saved, true);
    } catch (e) { oops(e); }
  };

  Promise.all([load(), call("/api/admin/feedback/settings").then((r) => renderSettings(r.data))]).catch(oops);
})();
