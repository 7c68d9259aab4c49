// Small modal dialogs (text, choice, confirm) built on <dialog>, replacing window.prompt and window.confirm.

function field(labelText, control) {
  const label = Object.assign(document.createElement("label"), { className: "field" });
  label.append(Object.assign(document.createElement("span"), { textContent: labelText }), control);
  return label;
}

// Shows a form dialog and resolves with the value of `read()` on submit, or null on cancel.
function formDialog(title, body, read, submitText) {
  return new Promise((resolve) => {
    const dialog = Object.assign(document.createElement("dialog"), { className: "modal" });
    const form = Object.assign(document.createElement("form"), { method: "dialog" });
    const heading = Object.assign(document.createElement("h2"), { textContent: title, id: `dlg-${Date.now()}` });
    dialog.setAttribute("aria-labelledby", heading.id);
    const buttons = Object.assign(document.createElement("div"), { className: "modal-buttons" });
    const cancel = Object.assign(document.createElement("button"), { type: "button", textContent: "Cancel" });
    const ok = Object.assign(document.createElement("button"), { type: "submit", className: "primary", textContent: submitText });
    buttons.append(cancel, ok);
    form.append(heading, ...body, buttons);
    dialog.append(form);
    let result = null;
    const opener = document.activeElement;
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", () => { result = read(); });
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function askText(title, labelText, value = "", submitText = "Save") {
  const input = Object.assign(document.createElement("input"), { type: "text", value, required: true, maxLength: 100 });
  const done = formDialog(title, [field(labelText, input)], () => input.value.trim() || null, submitText);
  input.select();
  return done;
}

export function askChoice(title, labelText, options, value = "", submitText = "Move") {
  const select = document.createElement("select");
  for (const [optionValue, text] of options) select.append(new Option(text, optionValue));
  select.value = value;
  return formDialog(title, [field(labelText, select)], () => ({ value: select.value }), submitText);
}

export function confirmDialog(title, text, submitText = "Delete") {
  const body = Object.assign(document.createElement("p"), { textContent: text });
  return formDialog(title, [body], () => true, submitText).then(Boolean);
}
