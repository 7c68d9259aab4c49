// JSON over fetch with the session cookie and Django's CSRF token, shared by every page script.

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

// `accept` lists error statuses whose JSON body is still an answer (a 503 from /readyz, say).
export async function request(url, { method = "GET", body, accept = [] } = {}) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok && !accept.includes(response.status)) {
    const message = data.error ? data.error.message : `Request failed (${response.status})`;
    throw Object.assign(new Error(message), { status: response.status, data });
  }
  return data;
}

export function api(path, options = {}) {
  return request(`/api/v1/${path}`, options);
}
