// synthia.js — browser client for the synthia.v1 live protocol and the REST auth it needs.
// Plain ES module, no dependencies, no build step. API and example: docs/client.md.
//
//   SynthiaApi     REST: register, login, refresh (rotating refresh token), logout, any JSON call.
//   SynthiaClient  WebSocket: handshake, commands as promises, events, reconnect with backoff and
//                  jitter, re-subscribe with `since`, token refresh, resumable chunked uploads.

export const SUBPROTOCOL = "synthia.v1";
export const STAGES = ["uploading", "validating", "queued", "analyzing", "persisting", "done"];

// Close codes after which reconnecting cannot help (protocol §1, §7): normal end, invalid
// UTF-8 or frame too big (client bugs), token refused at the handshake (4003: missing, forged,
// wrong type) and session revoked (4010: logout, block, deletion).
const FINAL_CLOSE_CODES = new Set([1000, 1007, 1009, 4003, 4010]);
// After these the user must sign in again: the client emits "revoked".
const SIGN_OUT_CODES = new Set([4003, 4010]);
const TOKEN_EXPIRED = 4001; // get a fresh token, then reconnect at once
const RATE_LIMITED = 4009;
const TOO_MANY_CONNECTIONS = 4029; // like 1013 (try again later): reconnect after a backoff
const SLOW_DOWN_CODES = new Set([RATE_LIMITED, TOO_MANY_CONNECTIONS]);
const HEADER_BYTES = 24; // 16-byte analysis UUID + 8-byte big-endian offset

/** A refusal by the server (REST or socket) or by this client, as data. */
export class SynthiaError extends Error {
  constructor({ code = "internal", message = "", temporary = false, retry_after, field, status } = {}) {
    super(message || code);
    this.name = "SynthiaError";
    this.code = code;
    this.temporary = Boolean(temporary);
    this.retryAfter = retry_after ?? null;
    this.field = field ?? null;
    this.status = status ?? null;
  }
}

// ---------------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------------

/**
 * Minimal REST client. Keeps the access and refresh tokens in memory; pass `onTokens` to
 * persist them (e.g. in sessionStorage) and `tokens` to restore them.
 */
export class SynthiaApi {
  constructor({ baseUrl = "", tokens = null, onTokens = null, fetch: fetchImpl = null } = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.accessToken = tokens?.access_token ?? null;
    this.refreshToken = tokens?.refresh_token ?? null;
    this.user = tokens?.user ?? null;
    this.onTokens = onTokens;
    this._fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
    this._refreshing = null;
  }

  get loggedIn() {
    return Boolean(this.accessToken);
  }

  async register(email, password, displayName = "") {
    const body = await this.request("POST", "/api/v1/auth/register",
      { email, password, display_name: displayName }, { auth: false });
    this._store(body);
    return body;
  }

  async login(email, password) {
    const body = await this.request("POST", "/api/v1/auth/login", { email, password }, { auth: false });
    this._store(body);
    return body;
  }

  /** A fresh access token from the refresh token (rotated on every use). Concurrent calls share one request. */
  refresh() {
    if (!this.refreshToken) return Promise.reject(new SynthiaError({ code: "unauthorized", message: "not logged in" }));
    this._refreshing ??= this.request("POST", "/api/v1/auth/refresh",
      { refresh_token: this.refreshToken }, { auth: false })
      .then((body) => { this._store(body); return this.accessToken; })
      .finally(() => { this._refreshing = null; });
    return this._refreshing;
  }

  async logout() {
    try {
      if (this.accessToken) {
        await this.request("POST", "/api/v1/auth/logout", { refresh_token: this.refreshToken }, { retry: false });
      }
    } finally {
      this.accessToken = this.refreshToken = this.user = null;
      this.onTokens?.(null);
    }
  }

  /** Any JSON call. Retries once with a refreshed token when the access token expired. */
  async request(method, path, body = undefined, { auth = true, retry = true, query = null } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
    let url = this.baseUrl + path;
    if (query) {
      const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== null && v !== undefined));
      if ([...params].length) url += `?${params}`;
    }
    const response = await this._fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (response.ok) return data;
    const error = new SynthiaError({ ...(data?.error ?? { code: "internal" }), status: response.status });
    if (auth && retry && response.status === 401 && this.refreshToken) {
      await this.refresh();
      return this.request(method, path, body, { auth, retry: false, query });
    }
    throw error;
  }

  _store(body) {
    if (!body) return;
    this.accessToken = body.access_token ?? this.accessToken;
    this.refreshToken = body.refresh_token ?? this.refreshToken;
    if (body.user) this.user = body.user;
    this.onTokens?.({ access_token: this.accessToken, refresh_token: this.refreshToken, user: this.user });
  }
}

// ---------------------------------------------------------------------------------------------
// Live socket
// ---------------------------------------------------------------------------------------------

function defaultUrl() {
  const loc = globalThis.location;
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws`;
}

function uuidBytes(id) {
  const hex = id.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new SynthiaError({ code: "bad_request", message: "not a UUID" });
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i += 1) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** SHA-256 of bytes as lowercase hex (WebCrypto: needs https or localhost). */
export async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) {
    throw new SynthiaError({ code: "unsupported", message: "crypto.subtle needs a secure context (https or localhost)" });
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Binary upload frame: [16-byte analysis UUID][8-byte big-endian offset][payload]. */
export function chunkFrame(analysisId, offset, payload) {
  const frame = new Uint8Array(HEADER_BYTES + payload.byteLength);
  frame.set(uuidBytes(analysisId), 0);
  new DataView(frame.buffer).setBigUint64(16, BigInt(offset), false);
  frame.set(payload, HEADER_BYTES);
  return frame;
}

export class SynthiaClient {
  /**
   * @param {object} options
   * @param {string} [options.url]            ws(s)://host/ws; default: this page's host
   * @param {string|function} options.token  the access token, or a function returning it (may be async)
   * @param {function} [options.refresh]      async () => a NEW access token (e.g. () => api.refresh())
   * @param {object} [options.backoff]        {initial: 500, max: 30000, factor: 2} in ms
   * @param {number} [options.commandTimeout] ms before a command without reply rejects (default 20000)
   */
  constructor({ url = null, token, refresh = null, backoff = {}, commandTimeout = 20000, WebSocket: Impl = null } = {}) {
    this.url = url ?? defaultUrl();
    this._token = token;
    this._refresh = refresh;
    this.backoff = { initial: 500, max: 30000, factor: 2, ...backoff };
    this.commandTimeout = commandTimeout;
    this._WebSocket = Impl ?? globalThis.WebSocket;
    this.state = "idle"; // idle | connecting | ready | reconnecting | closed
    this.session = null; // the last session.ready frame
    this.closeInfo = null; // {code, reason} of the close that ended the client
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // command id -> {resolve, reject, timer}
    this._handlers = new Map(); // event name -> Set(handler)
    this._positions = new Map(); // channel -> {offset, epoch}
    this._wanted = new Set(); // channels subscribed explicitly (re-subscribed after reconnect)
    this._readyWaiters = [];
    this._attempt = 0;
    this._timer = null;
    this._needFreshToken = false;
    this._everReady = false;
  }

  // -- lifecycle ------------------------------------------------------------------------------

  /** Open the socket; resolves with session.ready (after any retries), rejects if the client closes for good. */
  connect() {
    if (this.state === "idle" || this.state === "closed") {
      this.closeInfo = null;
      this._setState("connecting");
      this._open();
    }
    return this.whenReady();
  }

  /** Close for good (no reconnect). */
  close(code = 1000, reason = "client closed") {
    clearTimeout(this._timer);
    this._finish({ code, reason });
    if (this._ws && this._ws.readyState <= 1) this._ws.close(code, reason);
  }

  /** Resolves when the socket is ready (now, or after the current reconnect). */
  whenReady() {
    if (this.state === "ready") return Promise.resolve(this.session);
    if (this.state === "closed") return Promise.reject(this._closedError());
    return new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
  }

  // -- events ---------------------------------------------------------------------------------

  /**
   * Listen to a server event by name ("notification", "analysis.partial", "quiz.estimate", ...),
   * "*" for every server event, or a client event: "ready", "state", "close", "revoked", "error".
   * Returns a function that removes the handler.
   */
  on(name, handler) {
    if (!this._handlers.has(name)) this._handlers.set(name, new Set());
    this._handlers.get(name).add(handler);
    return () => this._handlers.get(name)?.delete(handler);
  }

  /** Resolve with the first event matching `name` and `predicate`. */
  waitFor(name, predicate = () => true, timeout = 60000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { off(); reject(new SynthiaError({ code: "timeout", message: `no ${name} event` })); }, timeout);
      const off = this.on(name, (event) => {
        if (!predicate(event)) return;
        clearTimeout(timer);
        off();
        resolve(event);
      });
    });
  }

  _emit(name, payload) {
    for (const key of this._isServerEvent(name) ? [name, "*"] : [name]) {
      for (const handler of this._handlers.get(key) ?? []) {
        try {
          handler(payload);
        } catch (err) {
          console.error("synthia handler failed", err);
        }
      }
    }
  }

  _isServerEvent(name) {
    return !["ready", "state", "close", "revoked", "error"].includes(name);
  }

  // -- commands -------------------------------------------------------------------------------

  /** Send a command; resolves with the reply, rejects with SynthiaError on `ok: false`. */
  async send(op, fields = {}, { timeout = this.commandTimeout } = {}) {
    await this.whenReady();
    return this._command(op, fields, timeout);
  }

  _command(op, fields, timeout = this.commandTimeout) {
    const id = this._nextId++;
    const frame = JSON.stringify({ ...fields, id, op });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new SynthiaError({ code: "timeout", message: `${op}: no reply`, temporary: true }));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer });
      try {
        this._ws.send(frame);
      } catch (err) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new SynthiaError({ code: "disconnected", message: String(err), temporary: true }));
      }
    });
  }

  ping() { return this.send("ping"); }

  /** Follow a channel; re-subscribed with `since` after every reconnect. */
  async subscribe(channel) {
    this._wanted.add(channel);
    return this._subscribe(channel);
  }

  async unsubscribe(channel) {
    this._wanted.delete(channel);
    this._positions.delete(channel);
    return this.send("unsubscribe", { channel });
  }

  /** {offset, epoch} of the newest event seen on `channel`, or null. */
  position(channel) {
    return this._positions.get(channel) ?? null;
  }

  _subscribe(channel, timeout) {
    const since = this._positions.get(channel);
    return this._command("subscribe", since ? { channel, since } : { channel }, timeout);
  }

  quizStart(locale = undefined) { return this.send("quiz.start", locale ? { locale } : {}); }
  quizAnswer(quizId, question, answer) { return this.send("quiz.answer", { quiz_id: quizId, question, answer }); }
  quizSubmit(quizId) { return this.send("quiz.submit", { quiz_id: quizId }); }
  cancelAnalysis(analysisId) { return this.send("analysis.cancel", { analysis_id: analysisId }); }

  // -- uploads ----------------------------------------------------------------------------------

  /**
   * Start an analysis of an image (File/Blob) and upload it in chunks. Survives reconnects: after
   * one it asks `upload.status` and resumes from the durable offset (on whichever node).
   * Resolves when the server holds every byte (or had the result cached):
   * {analysisId, channel, cached}. Follow `analysis.*` events on `channel` for the outcome;
   * `onStart` is called with the same object as soon as the server assigned the id.
   */
  async uploadImage(blob, { kind = "facial", onStart = null, onProgress = null, signal = null } = {}) {
    const bytes = new Uint8Array(await blob.arrayBuffer());
    const size = bytes.byteLength;
    const sha256 = await sha256Hex(bytes);
    const start = await this.send("analysis.start", {
      kind, content_type: blob.type || "application/octet-stream", size, sha256,
    });
    const analysisId = start.analysis_id;
    const channel = start.channel;
    this._wanted.add(channel);
    onStart?.({ analysisId, channel, cached: Boolean(start.cached) });
    if (start.cached || !start.upload) {
      onProgress?.(size, size);
      return { analysisId, channel, cached: true };
    }
    const maxChunk = start.upload.max_chunk_bytes ?? this.session?.limits?.max_chunk_bytes ?? 256 * 1024;
    let offset = start.upload.offset ?? 0;
    let resync = offset > 0;
    let stalls = 0; // consecutive resyncs without progress: bounded so a broken upload ends
    onProgress?.(offset, size);
    while (offset < size) {
      if (signal?.aborted) {
        await this.cancelAnalysis(analysisId).catch(() => {});
        throw new SynthiaError({ code: "cancelled", message: "upload aborted" });
      }
      try {
        await this.whenReady();
        if (resync) {
          offset = await this._durableOffset(analysisId);
          resync = false;
          onProgress?.(offset, size);
          if (offset >= size) break;
        }
        const end = Math.min(size, offset + maxChunk);
        const acked = this._chunkAck(analysisId);
        this._ws.send(chunkFrame(analysisId, offset, bytes.subarray(offset, end)));
        const reported = await acked;
        // Trust the event's byte offset only when it is exactly what this chunk should give;
        // otherwise (an older event, or an envelope offset) ask the server for the truth.
        offset = reported === end ? end : await this._durableOffset(analysisId);
        stalls = 0;
        onProgress?.(offset, size);
      } catch (err) {
        const retry = err instanceof SynthiaError && (err.code === "disconnected" || err.code === "bad_chunk" || err.code === "timeout");
        if (!retry || ++stalls > 8) throw err;
        resync = true;
      }
    }
    return { analysisId, channel, cached: false };
  }

  async _durableOffset(analysisId) {
    return (await this._command("upload.status", { analysis_id: analysisId })).offset;
  }

  // Resolves with the offset an `upload.progress` event for this analysis reports (the
  // server's answer to the chunk just sent); rejects on `analysis.error` or a dropped socket.
  _chunkAck(analysisId) {
    return new Promise((resolve, reject) => {
      const cleanup = () => { clearTimeout(timer); offProgress(); offError(); offClose(); };
      const timer = setTimeout(() => { cleanup(); reject(new SynthiaError({ code: "timeout", temporary: true })); }, this.commandTimeout);
      const offProgress = this.on("upload.progress", (e) => {
        if (e.analysis_id === analysisId) { cleanup(); resolve(e.received ?? e.offset); }
      });
      const offError = this.on("analysis.error", (e) => {
        if (e.analysis_id === analysisId) { cleanup(); reject(new SynthiaError(e)); }
      });
      const offClose = this.on("close", () => {
        cleanup();
        reject(new SynthiaError({ code: "disconnected", temporary: true }));
      });
    });
  }

  // -- connection machinery ---------------------------------------------------------------------

  async _currentToken() {
    if (this._needFreshToken && this._refresh) {
      this._needFreshToken = false;
      this._token = await this._refresh();
    }
    return typeof this._token === "function" ? this._token() : this._token;
  }

  async _open() {
    let token;
    try {
      token = await this._currentToken();
    } catch (err) {
      this._emit("error", err);
      if (err instanceof SynthiaError && err.status === 401) {
        // The refresh token itself was refused: only a new login can help.
        this._finish({ code: TOKEN_EXPIRED, reason: "token refresh refused" });
        return;
      }
      this._scheduleReconnect(null);
      return;
    }
    if (this.state === "closed") return;
    let ws;
    try {
      // The token rides in the subprotocol list: never in the URL (protocol §1).
      ws = new this._WebSocket(this.url, [SUBPROTOCOL, `bearer.${token}`]);
    } catch (err) {
      this._emit("error", err);
      this._scheduleReconnect(null);
      return;
    }
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    ws.onmessage = (msg) => this._onMessage(msg);
    ws.onclose = (e) => this._onClose(ws, e.code, e.reason);
  }

  _onMessage(msg) {
    if (typeof msg.data !== "string") return; // the server sends text frames only
    let frame;
    try {
      frame = JSON.parse(msg.data);
    } catch {
      return;
    }
    if (frame.id !== undefined && frame.ok !== undefined) {
      this._onReply(frame);
    } else if (frame.event) {
      this._onEvent(frame);
    }
  }

  _onReply(frame) {
    const pending = this._pending.get(frame.id);
    if (!pending) return;
    this._pending.delete(frame.id);
    clearTimeout(pending.timer);
    if (frame.ok) pending.resolve(frame);
    else pending.reject(new SynthiaError(frame.error ?? {}));
  }

  _onEvent(frame) {
    const { channel, offset, epoch } = frame;
    if (channel && typeof offset === "number") {
      const seen = this._positions.get(channel);
      // Replays after a reconnect may overlap live delivery: drop what was already seen.
      if (seen && seen.epoch === epoch && offset <= seen.offset) return;
      this._positions.set(channel, { offset, epoch });
    }
    switch (frame.event) {
      case "session.ready":
        this._onReady(frame);
        return;
      case "session.expiring":
        this._refreshSession();
        break;
      default:
        break;
    }
    this._emit(frame.event, frame);
  }

  async _onReady(frame) {
    const ws = this._ws;
    this.session = frame;
    const reconnect = this._everReady === true;
    this._everReady = true;
    // Catch up before declaring ready, so callers never race the replay. The automatic
    // channels (user:, broadcast) are re-sent only when there is a position to resume from.
    const channels = [...new Set([...this._wanted, ...this._positions.keys()])];
    const results = await Promise.allSettled(channels.map((c) => this._subscribe(c)));
    if (ws !== this._ws) return; // dropped again while catching up: the next ready retries
    results.forEach((r, i) => {
      if (r.status === "rejected" && !r.reason.temporary) {
        // e.g. forbidden after a role change: stop asking for it on every reconnect.
        this._wanted.delete(channels[i]);
        this._positions.delete(channels[i]);
        this._emit("error", Object.assign(r.reason, { channel: channels[i] }));
      }
    });
    this._attempt = 0;
    this._setState("ready");
    this._emit("ready", { ...frame, reconnect });
    const waiters = this._readyWaiters.splice(0);
    for (const w of waiters) w.resolve(frame);
  }

  async _refreshSession() {
    if (!this._refresh) return; // the socket will close with 4001 and we reconnect with _token
    try {
      const token = await this._refresh();
      this._token = token;
      await this._command("auth.refresh", { token });
    } catch (err) {
      this._emit("error", err);
    }
  }

  _onClose(ws, code, reason) {
    if (ws !== this._ws) return;
    this._ws = null;
    for (const [id, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new SynthiaError({ code: "disconnected", message: "connection closed", temporary: true }));
      this._pending.delete(id);
    }
    const wasReady = this.state === "ready";
    const final = this.state === "closed" || FINAL_CLOSE_CODES.has(code);
    this._emit("close", { code, reason, willReconnect: !final });
    if (final) {
      if (SIGN_OUT_CODES.has(code)) this._emit("revoked", { code, reason });
      this._finish({ code, reason });
      return;
    }
    // 4001: the token expired (at the handshake or later): refresh, then reconnect. 1013 and
    // 4029 (and a 1006 before ready: the network) keep the token and back off.
    if (code === TOKEN_EXPIRED) this._needFreshToken = true;
    this._scheduleReconnect(code);
  }

  _scheduleReconnect(code) {
    if (this.state === "closed") return;
    this._setState("reconnecting");
    const { initial, max, factor } = this.backoff;
    const cap = Math.min(max, initial * factor ** this._attempt);
    this._attempt += 1;
    // "Equal jitter": half fixed, half random, so a fleet of clients does not reconnect in step.
    let delay = cap / 2 + Math.random() * (cap / 2);
    if (SLOW_DOWN_CODES.has(code)) delay = Math.max(delay, 5000);
    if (code === TOKEN_EXPIRED) delay = Math.min(delay, 250);
    this._timer = setTimeout(() => this._open(), delay);
  }

  _finish(info) {
    if (this.state === "closed") return;
    this.closeInfo = info;
    this._setState("closed");
    const waiters = this._readyWaiters.splice(0);
    for (const w of waiters) w.reject(this._closedError());
  }

  _closedError() {
    const code = this.closeInfo?.code;
    return new SynthiaError({
      code: code === 4010 ? "session_revoked" : code === 4003 ? "unauthorized" : "closed",
      message: this.closeInfo?.reason || "connection closed",
    });
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", { state });
  }
}
