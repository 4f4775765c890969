// The dashboard's only script: live progress from the job event stream, and the forms
// that talk to the JSON API. The session cookie authenticates; unsafe requests add the
// session's CSRF token, which only pages of this origin can read.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

function showProgress(el, job) {
  const percent = Number(job.progress || 0);
  el.querySelector("progress").value = percent;
  el.querySelector(".percent").textContent = percent.toFixed(1) + " %";
  const status = el.querySelector(".status");
  status.textContent = job.status;
  status.className = "status status-" + job.status;
  el.querySelector(".stage").textContent = job.stage || "";
}

function follow(el) {
  const id = el.dataset.jobId;
  const source = new EventSource("/v1/repairs/" + id + "/events");
  const update = (event) => showProgress(el, JSON.parse(event.data));
  source.addEventListener("stage", update);
  source.addEventListener("progress", update);
  source.addEventListener("end", (event) => {
    update(event);
    source.close();
    el.dataset.ended = "true";
    // The job page shows figures, verdict and downloads once the job has finished.
    if (el.closest("[data-reload-on-end]")) window.location.reload();
  });
  // EventSource reconnects by itself (with Last-Event-ID) after a dropped connection.
}

async function answer(response) {
  const text = await response.text();
  let body = {};
  try { body = JSON.parse(text); } catch (_e) { body = { detail: text }; }
  return body;
}

function say(form, ok, message) {
  const out = form.querySelector("[data-result]") || form.parentElement.querySelector("[data-result]");
  if (!out) return;
  out.textContent = message;
  out.className = ok ? "ok" : "error";
}

async function send(form, url, init) {
  say(form, true, "sending…");
  const headers = { "X-CSRF-Token": csrf(), ...(init.headers || {}) };
  let response;
  try {
    response = await fetch(url, { ...init, headers, credentials: "same-origin" });
  } catch (e) {
    say(form, false, "network error: " + e);
    return null;
  }
  const body = await answer(response);
  if (!response.ok) {
    say(form, false, `${response.status} ${body.code || ""}: ${body.detail || ""}`);
    return null;
  }
  return body;
}

function uploadForm(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    for (const [name, value] of [...data.entries()]) {
      if (value === "") data.delete(name); // optional fields left empty are not sent
    }
    const body = await send(form, form.dataset.apiForm, { method: "POST", body: data });
    if (body) {
      say(form, true, "stored " + (body.id || ""));
      window.location.reload();
    }
  });
}

function repairForm(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const config = {};
    for (const [name, value] of new FormData(form).entries()) {
      if (value === "") continue;
      if (name === "overrides") {
        try { config.overrides = JSON.parse(value); } catch (e) {
          say(form, false, "overrides must be a JSON object: " + e.message);
          return;
        }
      } else if (name === "budget" || name === "iterations") {
        config[name] = Number(value);
      } else {
        config[name] = value;
      }
    }
    const body = await send(form, form.dataset.apiJson, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model_id: form.dataset.modelId, config }),
    });
    if (body) window.location.assign("/ui/jobs/" + body.id);
  });
}

function cancelButton(button) {
  button.addEventListener("click", async () => {
    const body = await send(button.parentElement, button.dataset.cancel, { method: "POST" });
    if (body) say(button.parentElement, true, "job is " + body.status);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(follow);
  document.querySelectorAll("form[data-api-form]").forEach(uploadForm);
  document.querySelectorAll("form[data-api-json]").forEach(repairForm);
  document.querySelectorAll("button[data-cancel]").forEach(cancelButton);
});
