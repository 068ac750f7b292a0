// rix report editor: fill the text from the chosen template without a reload, and keep
// the claim on the study alive while the editor is open (the server renews it on each
// save too; a claim lapses two hours after its last renewal).
"use strict";
(() => {
  const picker = document.querySelector("select[data-target]");
  const editor = document.querySelector("form[data-renew]");
  if (picker) {
    const text = document.getElementById(picker.dataset.target);
    const templateField = editor ? editor.querySelector("input[name=template]") : null;
    const known = new Set([...picker.options].map((o) => o.dataset.text));
    picker.addEventListener("change", () => {
      const chosen = picker.selectedOptions[0];
      if (!text || !chosen) return;
      const current = text.value.trim();
      if (current && !known.has(text.value) && !window.confirm("Replace the text with the template?")) return;
      text.value = chosen.dataset.text || "";
      if (templateField) templateField.value = chosen.value;
      text.focus();
    });
  }
  if (editor) {
    const renew = () => {
      fetch(editor.dataset.renew, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": document.body.dataset.csrf || "" },
      }).catch(() => {});
    };
    window.setInterval(renew, 10 * 60 * 1000);
  }
})();
