// rix import page: outside media sent in chunks to /api/imports, resumed after a dropped
// connection, then the outside patients reconciled to the user's own trust's records and
// stored by a job whose progress is shown. Text from the media or the index is only ever
// set as textContent, never as markup.
"use strict";
(() => {
  const root = document.getElementById("import");
  if (!root) return;
  const CHUNK = Number(root.dataset.chunk) || 4194304;
  const RETRIES = 5;
  const $ = (id) => document.getElementById(id);
  const state = { files: [], id: null, scan: null, choices: {} };

  function headers(extra) {
    const out = Object.assign({}, extra || {});
    const token = document.body.dataset.csrf;
    if (token) out["X-CSRF-Token"] = token;
    return out;
  }

  async function api(method, path, body, extra) {
    const options = { method, headers: headers(extra), credentials: "same-origin" };
    if (body !== undefined) {
      if (body instanceof ArrayBuffer) {
        options.body = body;
      } else {
        options.body = JSON.stringify(body);
        options.headers["Content-Type"] = "application/json";
      }
    }
    const answer = await fetch(path, options);
    let data = null;
    try { data = await answer.json(); } catch (_e) { data = null; }
    if (!answer.ok) {
      const error = new Error((data && (data.error || data.detail)) || answer.statusText);
      error.status = answer.status;
      throw error;
    }
    return data;
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function show(id) {
    for (const section of ["pick", "uploading", "reconcile", "storing", "summary"]) {
      $(section).hidden = section !== id && !(id === "uploading" && section === "pick");
    }
  }

  function bytes(n) {
    if (n < 1000) return n + " bytes";
    const units = ["kB", "MB", "GB", "TB"];
    let value = n / 1000, step = 0;
    while (value >= 1000 && step < units.length - 1) { value /= 1000; step += 1; }
    return value.toFixed(1) + " " + units[step];
  }

  function date(da) {
    return /^\d{8}$/.test(da || "") ? da.slice(0, 4) + "-" + da.slice(4, 6) + "-" + da.slice(6) : (da || "");
  }

  // --- 1. choosing files ---

  function picked(input) {
    state.files = Array.from(input.files || []);
    const total = state.files.reduce((sum, f) => sum + f.size, 0);
    $("picked").textContent = state.files.length ? state.files.length + " file(s), " + bytes(total) : "";
    $("upload").disabled = state.files.length === 0;
  }
  $("files").addEventListener("change", (e) => { $("folder").value = ""; picked(e.target); });
  $("folder").addEventListener("change", (e) => { $("files").value = ""; picked(e.target); });

  function declared() {
    return state.files.map((f) => ({ name: f.webkitRelativePath || f.name, size: f.size }));
  }

  // an upload begun in this tab survives a reload: the same files picked again resume it
  function remembered() {
    try { return JSON.parse(sessionStorage.getItem("rix-import") || "null"); } catch (_e) { return null; }
  }

  async function begin() {
    const mine = remembered();
    const wanted = JSON.stringify(declared());
    if (mine && mine.files === wanted) {
      try {
        const status = await api("GET", "/api/imports/" + mine.id);
        if (status.state === "receiving") return mine.id;
      } catch (_e) { /* gone: begin afresh */ }
    }
    const created = await api("POST", "/api/imports", { files: declared() });
    sessionStorage.setItem("rix-import", JSON.stringify({ id: created.id, files: wanted }));
    return created.id;
  }

  // --- 2. uploading, chunk by chunk ---

  async function digest(buffer) {
    if (!(window.crypto && window.crypto.subtle)) return "";  // plain http: no Web Crypto
    const hash = await window.crypto.subtle.digest("SHA-256", buffer);
    return Array.from(new Uint8Array(hash)).map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  function progress(received, total) {
    $("upload-bar").max = Math.max(total, 1);
    $("upload-bar").value = received;
    $("upload-text").textContent = bytes(received) + " of " + bytes(total) + " sent";
  }

  async function sendChunk(n, offset) {
    const file = state.files[n];
    const buffer = await file.slice(offset, offset + CHUNK).arrayBuffer();
    const sha = await digest(buffer);
    const query = "?offset=" + offset + (sha ? "&sha256=" + sha : "");
    const answer = await api("PUT", "/api/imports/" + state.id + "/files/" + n + query, buffer,
      { "Content-Type": "application/octet-stream" });
    return answer.received;
  }

  async function uploadAll() {
    $("upload-error").textContent = "";
    $("resume").hidden = true;
    $("abandon").hidden = false;
    const status = await api("GET", "/api/imports/" + state.id);
    const received = status.files.map((f) => f.received);
    const total = state.files.reduce((sum, f) => sum + f.size, 0);
    let sent = received.reduce((a, b) => a + b, 0);
    progress(sent, total);
    for (let n = 0; n < state.files.length; n += 1) {
      let offset = received[n];
      let failures = 0;
      while (offset < state.files[n].size) {
        try {
          const now = await sendChunk(n, offset);
          sent += now - offset;
          offset = now;
          failures = 0;
          progress(sent, total);
        } catch (error) {
          if (error.status === 409 || error.status === undefined || error.status >= 500) {
            failures += 1;
            if (failures > RETRIES) throw error;
            await new Promise((r) => setTimeout(r, 500 * 2 ** failures));
            const again = await api("GET", "/api/imports/" + state.id);  // where to resume
            sent += again.files[n].received - offset;
            offset = again.files[n].received;
            progress(sent, total);
          } else {
            throw error;
          }
        }
      }
    }
  }

  async function startUpload() {
    $("upload").disabled = true;
    show("uploading");
    try {
      if (!state.id) state.id = await begin();
      await uploadAll();
      await scan();
    } catch (error) {
      $("upload-error").textContent = "The upload stopped: " + error.message;
      $("resume").hidden = false;
    }
  }
  $("upload").addEventListener("click", startUpload);
  $("resume").addEventListener("click", startUpload);
  $("abandon").addEventListener("click", async () => {
    if (state.id) await api("DELETE", "/api/imports/" + state.id).catch(() => null);
    sessionStorage.removeItem("rix-import");
    window.location.assign("/import");
  });

  // --- 3. the outside patients and the user's choices ---

  async function scan() {
    $("upload-text").textContent = "Reading the media…";
    state.scan = await api("POST", "/api/imports/" + state.id + "/scan");
    state.choices = {};
    renderPatients();
    show("reconcile");
  }

  function renderPatients() {
    const holder = $("patients");
    holder.replaceChildren();
    for (const p of state.scan.patients) holder.append(patientPanel(p));
    renderProblems($("unreadable"), state.scan.refused, state.scan.skipped);
    if (!state.scan.patients.length) {
      holder.append(el("p", "No DICOM images were found on the media.", "error"));
    }
    updateStore();
  }

  function patientPanel(p) {
    const box = el("fieldset", null, "panel");
    box.append(el("legend", (p.name || "(no name)") + " — outside ID " + (p.patient_id || "(none)")));
    const facts = el("dl", null, "who-is");
    for (const [label, value] of [["Issuer", p.issuer || "(none given)"], ["Born", date(p.birth_date)],
      ["Sex", p.sex], ["NHS number", p.nhs_number], ["Images", p.instances]]) {
      const pair = el("div");
      pair.append(el("dt", label), el("dd", value || "—"));
      facts.append(pair);
    }
    box.append(facts);
    const table = el("table");
    const head = el("tr");
    for (const h of ["Date", "Description", "Modalities", "Series", "Images"]) head.append(el("th", h));
    table.append(head);
    for (const s of p.studies) {
      const row = el("tr");
      for (const v of [date(s.date), s.description, s.modalities.join(", "), s.series, s.instances]) {
        row.append(el("td", v));
      }
      table.append(row);
    }
    box.append(table);
    box.append(chooser(p));
    return box;
  }

  function chooser(p) {
    const wrap = el("div");
    const id = "q-" + p.key;
    const label = el("label", "Find the record at your trust");
    label.htmlFor = id;
    const input = el("input");
    input.id = id;
    input.type = "search";
    input.value = p.nhs_number || p.suggested[0] || "";
    const button = el("button", "Search");
    button.type = "button";
    const list = el("div");
    list.setAttribute("role", "radiogroup");
    list.setAttribute("aria-label", "Records for " + (p.name || p.patient_id));
    const search = async () => {
      list.replaceChildren(el("p", "Searching…", "muted"));
      try {
        const found = await api("GET", "/api/imports/" + state.id + "/candidates?q=" + encodeURIComponent(input.value));
        renderChoices(list, p, found);
      } catch (error) {
        list.replaceChildren(el("p", error.message, "error"));
      }
    };
    button.addEventListener("click", search);
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); search(); } });
    wrap.append(label, input, button, list);
    renderChoices(list, p, []);
    return wrap;
  }

  function option(p, value, text, hint) {
    const line = el("div", null, "check");
    const radio = el("input");
    radio.type = "radio";
    radio.name = "choice-" + p.key;
    radio.id = "choice-" + p.key + "-" + value;
    radio.value = value;
    radio.checked = state.choices[p.key] === value;
    radio.addEventListener("change", () => { state.choices[p.key] = value; updateStore(); });
    const label = el("label", text);
    label.htmlFor = radio.id;
    line.append(radio, label);
    if (hint) line.append(el("span", hint, "muted"));
    return line;
  }

  function renderChoices(list, p, found) {
    list.replaceChildren();
    for (const c of found) {
      const hint = [c.patient, date(c.birth_date), c.sex, c.nhs_number ? "NHS " + c.nhs_number : ""]
        .filter(Boolean).join(" · ");
      list.append(option(p, c.patient, c.name || c.patient_id, hint));
    }
    if (!found.length && state.choices[p.key] && state.choices[p.key] !== "skip") {
      list.append(option(p, state.choices[p.key], state.choices[p.key], "chosen"));
    }
    list.append(option(p, "skip", "Skip: do not store this patient's images", ""));
  }

  function updateStore() {
    const patients = (state.scan && state.scan.patients) || [];
    const all = patients.length > 0 && patients.every((p) => state.choices[p.key]);
    const any = patients.some((p) => state.choices[p.key] && state.choices[p.key] !== "skip");
    $("store").disabled = !(all && any);
  }

  function renderProblems(holder, refused, skipped) {
    holder.replaceChildren();
    const rows = (refused || []).map((r) => ["Not stored", r]).concat((skipped || []).map((r) => ["Skipped", r]));
    if (!rows.length) return;
    holder.append(el("h3", "Files that are not stored"));
    const table = el("table");
    for (const [what, r] of rows) {
      const row = el("tr");
      row.append(el("td", r.file), el("td", what), el("td", r.reason, "message"));
      table.append(row);
    }
    holder.append(table);
  }

  // --- 4. storing, and the summary ---

  $("store").addEventListener("click", async () => {
    $("store").disabled = true;
    $("store-error").textContent = "";
    try {
      await api("POST", "/api/imports/" + state.id + "/store", { reconcile: state.choices });
    } catch (error) {
      $("store-error").textContent = error.message;
      updateStore();
      return;
    }
    sessionStorage.removeItem("rix-import");
    show("storing");
    poll();
  });

  async function poll() {
    let status;
    try {
      status = await api("GET", "/api/imports/" + state.id);
    } catch (error) {
      $("store-text").textContent = "Cannot read the progress (" + error.message + "); trying again…";
      setTimeout(poll, 3000);
      return;
    }
    if (status.state === "done") { summary(status.summary); return; }
    const job = status.job;
    if (job && (job.state === "dead" || job.state === "cancelled")) {
      $("store-text").textContent = "The store " + job.state + ": " + (job.error || "see Status");
      return;
    }
    if (job && job.total) {
      $("store-bar").max = job.total;
      $("store-bar").value = job.done;
      $("store-text").textContent = job.done + " of " + job.total + " files";
    } else {
      $("store-text").textContent = "Waiting to start…";
    }
    setTimeout(poll, 1000);
  }

  function summary(result) {
    show("summary");
    const figures = $("summary-figures");
    figures.replaceChildren();
    for (const [label, value] of [["Stored", result.stored], ["Already in the archive", result.already_present],
      ["Kept aside (different copy already stored)", result.duplicates_kept],
      ["Not stored", result.refused.length], ["Skipped", result.skipped.length]]) {
      const pair = el("div");
      pair.append(el("dt", label), el("dd", value));
      figures.append(pair);
    }
    renderProblems($("summary-problems"), result.refused, result.skipped);
  }
})();
