// The UI's client of /client/api and /client/stream: a session like any CloudStack client's
// (cookie + sessionkey), JSON answers, CloudStack error bodies turned into ApiError.

const STORE = "cloudiag.session";
const PARAM_HEADER = "X-Cloudiag-Param";

/** An error answered by the API: HTTP status, CloudStack's errortext, the parameter concerned. */
export class ApiError extends Error {
  constructor(code, text, param = null) {
    super(text);
    this.code = code;
    this.param = param;
  }
}

const expiredListeners = new Set();

/** Call fn(error) when a call finds the session gone (401): the app shows the login again. */
export function onExpired(fn) {
  expiredListeners.add(fn);
}

/** The current session: {sessionkey, username, role, userid, apis}, or null. */
export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE));
  } catch {
    return null;
  }
}

function saveSession(value) {
  if (value) sessionStorage.setItem(STORE, JSON.stringify(value));
  else sessionStorage.removeItem(STORE);
}

function formOf(command, params) {
  const body = new URLSearchParams();
  body.set("command", command);
  body.set("response", "json");
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") body.set(key, String(value));
  }
  const current = session();
  if (current && command !== "login") body.set("sessionkey", current.sessionkey);
  return body;
}

/** Call an API command (form POST, JSON) and return the object under its response envelope. */
export async function call(command, params = {}) {
  let response;
  try {
    response = await fetch("/client/api", {
      method: "POST",
      body: formOf(command, params),
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
  } catch {
    throw new ApiError(0, "The server cannot be reached. Check that cloudiag is running.");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  const envelope = data && typeof data === "object" ? Object.values(data)[0] : null;
  if (!response.ok) {
    const text = envelope?.errortext || `The server answered HTTP ${response.status}.`;
    const error = new ApiError(response.status, text, response.headers.get(PARAM_HEADER));
    if (response.status === 401 && command !== "login" && session()) {
      saveSession(null);
      for (const fn of expiredListeners) fn(error);
    }
    throw error;
  }
  return envelope ?? {};
}

/** Log in; keeps the session key for the calls that follow and learns what the role may call. */
export async function login(username, password, domain) {
  saveSession(null);
  const answer = await call("login", { username, password, domain: domain || "/" });
  saveSession({
    sessionkey: answer.sessionkey,
    username: answer.username,
    role: answer.role || roleOfType(answer.type),
    userid: answer.userid,
    apis: [],
  });
  await loadApis();
  return session();
}

function roleOfType(type) {
  return { 1: "Admin", 2: "DomainAdmin", 0: "User" }[type] ?? "User";
}

/** The commands this session may call, from listApis (the server's own role rules). */
export async function loadApis() {
  const answer = await call("listApis");
  const current = session();
  if (current) {
    current.apis = (answer.api || []).map((api) => api.name);
    saveSession(current);
  }
  return current;
}

/** Whether the logged-in role may call a command. */
export function allowed(command) {
  return Boolean(session()?.apis?.includes(command));
}

/** End the session on the server (best effort) and forget it here. */
export async function logout() {
  try {
    await call("logout");
  } catch {
    // Already gone on the server: nothing more to end.
  } finally {
    saveSession(null);
  }
}

/**
 * Follow a job's output live (Server-Sent Events from /client/stream).
 * handlers: line({seq, stream, text}), end(job), error(ApiError). Returns a stop function.
 * When the stream cannot be used, the job is polled with queryAsyncJobResult instead.
 */
export function followJob(jobid, handlers) {
  let stopped = false;
  let source = null;
  let lastSeq = -1;
  const finish = (job) => {
    if (stopped) return;
    stop();
    handlers.end(job);
  };
  const poll = async () => {
    while (!stopped) {
      try {
        const job = await call("queryAsyncJobResult", { jobid });
        if (job.jobstatus !== 0) return finish(job);
      } catch (error) {
        if (!stopped) handlers.error(error);
        return stop();
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  };
  function stop() {
    stopped = true;
    if (source) source.close();
  }
  const key = encodeURIComponent(session()?.sessionkey || "");
  source = new EventSource(`/client/stream?jobid=${encodeURIComponent(jobid)}&sessionkey=${key}`);
  source.addEventListener("line", (event) => {
    const line = JSON.parse(event.data);
    // A reconnect replays from the first line: show each line once.
    if (line.seq <= lastSeq) return;
    lastSeq = line.seq;
    handlers.line(line);
  });
  source.addEventListener("end", (event) => finish(JSON.parse(event.data)));
  source.addEventListener("error", () => {
    if (stopped || !source) return;
    if (source.readyState === EventSource.CLOSED) {
      source = null;
      poll();
    }
  });
  return stop;
}
