// synthia-client — typed client for the synthia.v1 real-time protocol (docs/protocol.md).
// No runtime dependencies: browsers use their WebSocket; Node >= 20 takes globalThis.WebSocket
// or a `WebSocket` option (e.g. the `ws` package). Docs: docs/client.md (= README.md).
import type {
  AnalysisPartialEvent,
  AnalysisStartReply,
  CommandMap,
  CommandName,
  ErrorBody,
  QuizQuestion,
  ReplyMap,
  ServerEvent,
  ServerEventMap,
  SessionReadyEvent,
  Since,
} from "./protocol.gen.js";

export * from "./protocol.gen.js";

/** `analysis.result` as it can reach the client: on its channel, or re-sent directly from the
 * database on subscribe (no `offset`/`epoch`: a direct event is outside the channel's sequence). */
export type AnalysisOutcome = ServerEventMap["analysis.result"];
type AnalysisFailure = ServerEventMap["analysis.error"];

export const SUBPROTOCOL = "synthia.v1";
export const STAGES = ["uploading", "validating", "queued", "analyzing", "persisting", "done"] as const;

const HEADER_BYTES = 24; // 16-byte analysis UUID + 8-byte big-endian offset
// Close codes (protocol §7).
const STOP_CODES = new Set([1000, 1007, 1009]); // normal end, or a client bug: retrying cannot help
const AUTH_STOP_CODES = new Set([4003, 4010]); // token refused / session revoked: sign in again
const TOKEN_EXPIRED = 4001;
const SLOW_DOWN_CODES = new Set([4009, 4029]); // rate limited; too many sockets for this user
const SLOW_DOWN_FLOOR_MS = 5000; // the server's retry_after for 4029 (its close carries no number)

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export interface SynthiaErrorInit {
  code?: string;
  message?: string;
  temporary?: boolean;
  retry_after?: number | null;
  retryAfter?: number | null;
  field?: string | null;
  status?: number | null;
  closeCode?: number | null;
}

/** A refusal by the server (reply, `analysis.error`, REST body, close code) or by this client. */
export class SynthiaError extends Error {
  readonly code: string;
  readonly temporary: boolean;
  /** Seconds to wait before trying again, when the server said so. */
  readonly retryAfter: number | null;
  readonly field: string | null;
  /** HTTP status for REST errors. */
  readonly status: number | null;
  /** WebSocket close code for connection errors. */
  readonly closeCode: number | null;

  constructor(init: SynthiaErrorInit | ErrorBody = {}) {
    const i = init as SynthiaErrorInit;
    super(i.message || i.code || "internal");
    this.name = "SynthiaError";
    this.code = i.code ?? "internal";
    this.temporary = Boolean(i.temporary);
    this.retryAfter = i.retryAfter ?? i.retry_after ?? null;
    this.field = i.field ?? null;
    this.status = i.status ?? null;
    this.closeCode = i.closeCode ?? null;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function getSubtle(): SubtleCrypto {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) {
    throw new SynthiaError({
      code: "no_webcrypto",
      message: "synthia-client: crypto.subtle is unavailable (browsers offer it only on https:// or localhost)",
    });
  }
  return subtle;
}

/** Lower-case hex SHA-256 of `bytes`, with WebCrypto. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await getSubtle().digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A binary upload frame: `[16-byte analysis UUID][8-byte big-endian offset][payload]`. */
export function chunkFrame(analysisId: string, offset: number, payload: Uint8Array): Uint8Array {
  const hex = analysisId.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new SynthiaError({ code: "bad_request", message: `not a UUID: ${analysisId}` });
  const frame = new Uint8Array(HEADER_BYTES + payload.byteLength);
  for (let i = 0; i < 16; i++) frame[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  new DataView(frame.buffer).setBigUint64(16, BigInt(offset), false);
  frame.set(payload, HEADER_BYTES);
  return frame;
}

/** "Full jitter" backoff: a uniformly random delay in [0, min(max, initial * factor^attempt)]. */
export function backoffDelay(attempt: number, { initial = 500, max = 30000, factor = 2 }: Partial<Backoff> = {}, random = Math.random): number {
  return random() * Math.min(max, initial * factor ** attempt);
}

/** Milliseconds the server asked us to wait before reconnecting after a close, or 0. */
export function retryHintMs(code: number, reason = ""): number {
  const m = /retry[_ -]?after[=: ]+(\d+(?:\.\d+)?)/i.exec(reason);
  if (m) return Number(m[1]) * 1000;
  return SLOW_DOWN_CODES.has(code) ? SLOW_DOWN_FLOOR_MS : 0;
}

async function toBytes(input: Blob | ArrayBuffer | Uint8Array): Promise<Uint8Array> {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  return new Uint8Array(await input.arrayBuffer());
}

// ---------------------------------------------------------------------------------------------
// REST (the auth calls an app needs to get tokens)
// ---------------------------------------------------------------------------------------------

export interface Tokens {
  access_token: string;
  refresh_token: string;
  user?: Record<string, unknown> | null;
  [key: string]: unknown;
}

export interface ApiOptions {
  baseUrl?: string;
  tokens?: Tokens | null;
  onTokens?: ((tokens: Tokens | null) => void) | null;
  fetch?: typeof fetch | null;
}

export interface RequestOptions {
  auth?: boolean;
  retry?: boolean;
  query?: Record<string, string | number | boolean | null | undefined> | null;
}

/** Minimal REST client: register, login, refresh (rotating refresh token), logout, any JSON call. */
export class SynthiaApi {
  baseUrl: string;
  accessToken: string | null;
  refreshToken: string | null;
  user: Record<string, unknown> | null;
  onTokens: ((tokens: Tokens | null) => void) | null;
  private _fetch: typeof fetch;
  private _refreshing: Promise<string> | null = null;

  constructor({ baseUrl = "", tokens = null, onTokens = null, fetch: fetchImpl = null }: ApiOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.accessToken = tokens?.access_token ?? null;
    this.refreshToken = tokens?.refresh_token ?? null;
    this.user = tokens?.user ?? null;
    this.onTokens = onTokens;
    this._fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
  }

  get loggedIn(): boolean {
    return Boolean(this.accessToken);
  }

  async register(email: string, password: string, displayName = ""): Promise<Tokens> {
    const body = await this.request<Tokens>("POST", "/api/v1/auth/register",
      { email, password, display_name: displayName }, { auth: false });
    this._store(body);
    return body;
  }

  async login(email: string, password: string): Promise<Tokens> {
    const body = await this.request<Tokens>("POST", "/api/v1/auth/login", { email, password }, { auth: false });
    this._store(body);
    return body;
  }

  /** A fresh access token from the refresh token (rotated on every use). Concurrent calls share one request. */
  refresh(): Promise<string> {
    if (!this.refreshToken) {
      return Promise.reject(new SynthiaError({ code: "unauthorized", message: "not logged in", status: 401 }));
    }
    this._refreshing ??= this.request<Tokens>("POST", "/api/v1/auth/refresh",
      { refresh_token: this.refreshToken }, { auth: false })
      .then((body) => { this._store(body); return this.accessToken as string; })
      .finally(() => { this._refreshing = null; });
    return this._refreshing;
  }

  async logout(): Promise<void> {
    try {
      if (this.accessToken) {
        await this.request("POST", "/api/v1/auth/logout", { refresh_token: this.refreshToken }, { retry: false });
      }
    } finally {
      this.accessToken = this.refreshToken = this.user = null;
      this.onTokens?.(null);
    }
  }

  /** Any JSON call. Retries once with a refreshed token after a 401. */
  async request<T = any>(method: string, path: string, body?: unknown, { auth = true, retry = true, query = null }: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
    let url = this.baseUrl + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined) params.append(k, String(v));
      if ([...params].length) url += `?${params}`;
    }
    const response = await this._fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (response.ok) return data as T;
    const error = new SynthiaError({ ...(data?.error ?? { code: "internal" }), status: response.status });
    if (auth && retry && response.status === 401 && this.refreshToken) {
      await this.refresh();
      return this.request<T>(method, path, body, { auth, retry: false, query });
    }
    throw error;
  }

  private _store(body: Partial<Tokens> | null): void {
    if (!body) return;
    this.accessToken = body.access_token ?? this.accessToken;
    this.refreshToken = body.refresh_token ?? this.refreshToken;
    this.user = (body.user as Record<string, unknown> | undefined) ?? this.user;
    if (this.accessToken && this.refreshToken) {
      this.onTokens?.({ access_token: this.accessToken, refresh_token: this.refreshToken, user: this.user });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// WebSocket client
// ---------------------------------------------------------------------------------------------

/** The part of the WHATWG WebSocket this client uses (browsers, Node >= 22, the `ws` package). */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror?: ((event: unknown) => void) | null;
  send(data: string | Uint8Array | ArrayBuffer): void;
  close(code?: number, reason?: string): void;
}

/** Any WebSocket class: the browser's, Node's, or `ws`'s default export (instances must behave like WebSocketLike). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => object;

export type TokenReason = "connect" | "reconnect" | "expired" | "expiring";

/** Called for every (re)connect and on `session.expiring`: the app's one hook for refreshing. */
export type GetToken = (info: { reason: TokenReason }) => string | Promise<string>;

export interface Backoff {
  initial: number;
  max: number;
  factor: number;
}

export interface ClientOptions {
  /** `ws(s)://host/ws`; in a browser the default is this page's host. */
  url?: string;
  /** Called on every (re)connect and on `session.expiring`; may be async. */
  getToken?: GetToken;
  /** Legacy (synthia.js): the token or a function returning it, read at every connect. */
  token?: string | (() => string | Promise<string>);
  /** Legacy (synthia.js): a new access token, used on `session.expiring` and after close 4001. */
  refresh?: (() => Promise<string>) | null;
  /** A WebSocket constructor (e.g. `import WebSocket from "ws"`); default `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  backoff?: Partial<Backoff>;
  /** ms before a command without a reply rejects with code `timeout`. */
  commandTimeout?: number;
}

export type ClientState = "idle" | "connecting" | "ready" | "reconnecting" | "closed";

export interface CloseInfo {
  code: number;
  reason: string;
}

/** Client-side events, next to the server events of ServerEventMap. */
export interface ClientEventMap {
  state: { state: ClientState };
  /** After `session.ready` and the re-subscribes; `lost` lists channels whose `since` replay was incomplete (reload them over REST). */
  ready: SessionReadyEvent & { reconnect: boolean; lost: string[] };
  close: CloseInfo & { willReconnect: boolean; delay?: number };
  /** The token was refused (4003), revoked (4010) or stayed expired after a fresh one (4001): the client stopped. */
  auth_error: CloseInfo & { error: SynthiaError };
  /** synthia.js name for `auth_error` on 4003/4010. */
  revoked: CloseInfo;
  error: SynthiaError & { channel?: string };
}

export type EventMap = ServerEventMap & ClientEventMap & { "*": ServerEvent };
export type EventName = keyof EventMap;

export interface UploadStart {
  analysisId: string;
  channel: string;
  cached: boolean;
}

export interface UploadOptions {
  kind?: "facial";
  contentType?: string;
  onStart?: ((start: UploadStart) => void) | null;
  onProgress?: ((sentBytes: number, size: number) => void) | null;
  signal?: AbortSignal | null;
}

export interface AnalyzeOptions extends UploadOptions {
  onPartial?: ((partial: AnalysisPartialEvent["partial"], event: AnalysisPartialEvent) => void) | null;
  /** ms to wait for the outcome after the upload (default 5 minutes). */
  timeout?: number;
}

export interface Quiz {
  quizId: string;
  questions: QuizQuestion[];
  answer(question: string, answer: string): Promise<ReplyMap["quiz.answer"]>;
  submit(): Promise<ReplyMap["quiz.submit"]>;
}

type Handler = (payload: any) => void;
type Pending = { resolve: (v: any) => void; reject: (e: SynthiaError) => void; timer: ReturnType<typeof setTimeout> };

const CLIENT_EVENTS = new Set(["state", "ready", "close", "auth_error", "revoked", "error"]);

function resolveWebSocket(option?: WebSocketConstructor): WebSocketConstructor {
  const ctor = option ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!ctor) {
    throw new SynthiaError({
      code: "no_websocket",
      message: "synthia-client: no WebSocket implementation. This runtime has no globalThis.WebSocket " +
        "(Node < 22 without --experimental-websocket); pass one: connect({ url, getToken, WebSocket }) " +
        "with `import WebSocket from \"ws\"`.",
    });
  }
  return ctor;
}

function defaultUrl(): string {
  const loc = (globalThis as { location?: { protocol: string; host: string } }).location;
  if (!loc) throw new SynthiaError({ code: "bad_request", message: "synthia-client: `url` is required outside a browser" });
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws`;
}

export class SynthiaClient {
  readonly url: string;
  readonly backoff: Backoff;
  readonly commandTimeout: number;
  state: ClientState = "idle";
  /** The last `session.ready` frame. */
  session: SessionReadyEvent | null = null;
  /** `{code, reason}` of the close that ended the client. */
  closeInfo: CloseInfo | null = null;
  /** @internal the current socket (tests cut it to simulate a network drop). */
  _ws: WebSocketLike | null = null;

  private readonly _WebSocket: WebSocketConstructor;
  private readonly _getToken: GetToken;
  private _handlers = new Map<string, Set<Handler>>();
  private _pending = new Map<number, Pending>();
  private _nextId = 1;
  private _positions = new Map<string, Since>();
  private _wanted = new Set<string>();
  private _readyWaiters: Array<{ resolve: (s: SessionReadyEvent) => void; reject: (e: SynthiaError) => void }> = [];
  private _attempt = 0;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _tokenReason: TokenReason = "connect";
  private _expiredRetries = 0;
  private _everReady = false;

  constructor(options: ClientOptions) {
    this._WebSocket = resolveWebSocket(options.WebSocket);
    this.url = options.url ?? defaultUrl();
    this.backoff = { initial: 500, max: 30000, factor: 2, ...(options.backoff ?? {}) };
    this.commandTimeout = options.commandTimeout ?? 20000;
    if (options.getToken) {
      this._getToken = options.getToken;
    } else if (options.token !== undefined) {
      const { token, refresh } = options;
      let current: string | (() => string | Promise<string>) = token;
      this._getToken = async ({ reason }) => {
        if ((reason === "expired" || reason === "expiring") && refresh) current = await refresh();
        return typeof current === "function" ? current() : current;
      };
    } else {
      throw new SynthiaError({ code: "bad_request", message: "synthia-client: `getToken` is required" });
    }
  }

  // -- lifecycle --------------------------------------------------------------------------------

  /** Open the socket; resolves with `session.ready` (after retries), rejects if the client stops first. */
  connect(): Promise<SessionReadyEvent> {
    if (this.state === "idle" || this.state === "closed") {
      this.closeInfo = null;
      this._tokenReason = "connect";
      this._setState("connecting");
      void this._open();
    }
    return this.whenReady();
  }

  /** Close for good (no reconnect). */
  close(code = 1000, reason = "client closed"): void {
    if (this._timer) clearTimeout(this._timer);
    this._finish({ code, reason });
    if (this._ws && this._ws.readyState <= 1) this._ws.close(code, reason);
  }

  /** Resolves when the socket is ready (now, or after the current reconnect). */
  whenReady(): Promise<SessionReadyEvent> {
    if (this.state === "ready" && this.session) return Promise.resolve(this.session);
    if (this.state === "closed") return Promise.reject(this._closedError());
    return new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
  }

  // -- events -----------------------------------------------------------------------------------

  /** Listen to a server event (`"analysis.partial"`, …), `"*"`, or a client event. Returns an unsubscribe function. */
  on<K extends EventName>(name: K, handler: (event: EventMap[K]) => void): () => void;
  on(name: string, handler: Handler): () => void;
  on(name: string, handler: Handler): () => void {
    if (!this._handlers.has(name)) this._handlers.set(name, new Set());
    this._handlers.get(name)!.add(handler);
    return () => { this._handlers.get(name)?.delete(handler); };
  }

  /** Resolve with the first event `name` matching `predicate`. */
  waitFor<K extends EventName>(name: K, predicate: (event: EventMap[K]) => boolean = () => true, timeout = 60000): Promise<EventMap[K]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { off(); reject(new SynthiaError({ code: "timeout", message: `no ${name} event`, temporary: true })); }, timeout);
      const off = this.on(name, (event: EventMap[K]) => {
        if (!predicate(event)) return;
        clearTimeout(timer);
        off();
        resolve(event);
      });
    });
  }

  private _emit(name: string, payload: unknown): void {
    for (const key of CLIENT_EVENTS.has(name) ? [name] : [name, "*"]) {
      for (const handler of [...(this._handlers.get(key) ?? [])]) {
        try {
          handler(payload);
        } catch (err) {
          console.error("synthia handler failed", err);
        }
      }
    }
  }

  // -- commands ---------------------------------------------------------------------------------

  /** Send a command; resolves with its reply, rejects with SynthiaError (`ok: false`, timeout, disconnect). */
  async send<K extends CommandName>(op: K, fields?: CommandMap[K], options?: { timeout?: number }): Promise<ReplyMap[K]>;
  async send(op: string, fields: Record<string, unknown> = {}, { timeout = this.commandTimeout } = {}): Promise<any> {
    await this.whenReady();
    return this._command(op, fields, timeout);
  }

  private _command(op: string, fields: object, timeout = this.commandTimeout): Promise<any> {
    const id = this._nextId++;
    const frame = JSON.stringify({ ...fields, id, op });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new SynthiaError({ code: "timeout", message: `${op}: no reply`, temporary: true }));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer });
      try {
        if (!this._ws) throw new Error("not connected");
        this._ws.send(frame);
      } catch (err) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new SynthiaError({ code: "disconnected", message: String(err), temporary: true }));
      }
    });
  }

  ping(): Promise<ReplyMap["ping"]> { return this.send("ping"); }

  /** Follow a channel; re-subscribed with `since` after every reconnect. */
  subscribe(channel: string): Promise<ReplyMap["subscribe"]> {
    this._wanted.add(channel);
    return this.whenReady().then(() => this._subscribe(channel));
  }

  unsubscribe(channel: string): Promise<ReplyMap["unsubscribe"]> {
    this._wanted.delete(channel);
    this._positions.delete(channel);
    return this.send("unsubscribe", { channel });
  }

  /** `{offset, epoch}` of the newest event seen on `channel`, or null. */
  position(channel: string): Since | null {
    return this._positions.get(channel) ?? null;
  }

  private _subscribe(channel: string, timeout?: number): Promise<ReplyMap["subscribe"]> {
    const since = this._positions.get(channel);
    return this._command("subscribe", since ? { channel, since } : { channel }, timeout);
  }

  quizStart(locale?: string): Promise<ReplyMap["quiz.start"]> { return this.send("quiz.start", locale ? { locale } : {}); }
  quizAnswer(quizId: string, question: string, answer: string): Promise<ReplyMap["quiz.answer"]> {
    return this.send("quiz.answer", { quiz_id: quizId, question, answer });
  }
  quizSubmit(quizId: string): Promise<ReplyMap["quiz.submit"]> { return this.send("quiz.submit", { quiz_id: quizId }); }
  cancelAnalysis(analysisId: string): Promise<ReplyMap["analysis.cancel"]> { return this.send("analysis.cancel", { analysis_id: analysisId }); }

  /** Start the colour quiz: its questions plus `answer()` / `submit()` bound to it. */
  async quiz(locale?: string): Promise<Quiz> {
    const started = await this.quizStart(locale);
    return {
      quizId: started.quiz_id,
      questions: started.questions,
      answer: (question, answer) => this.quizAnswer(started.quiz_id, question, answer),
      submit: () => this.quizSubmit(started.quiz_id),
    };
  }

  // -- uploads ----------------------------------------------------------------------------------

  /**
   * Start a facial analysis of an image and upload it in chunks, resuming after reconnects (on
   * any node) from the durable offset (`upload.status`). Resolves once the server holds every
   * byte (or had the result cached); the outcome follows on `channel`.
   */
  async uploadImage(input: Blob | ArrayBuffer | Uint8Array, { kind = "facial", contentType, onStart = null, onProgress = null, signal = null }: UploadOptions = {}): Promise<UploadStart> {
    if (signal?.aborted) throw new SynthiaError({ code: "cancelled", message: "upload aborted" });
    const bytes = await toBytes(input);
    const size = bytes.byteLength;
    const sha256 = await sha256Hex(bytes);
    const type = contentType ?? ((input as Blob).type || "application/octet-stream");
    const start: AnalysisStartReply = await this.send("analysis.start", { kind, content_type: type, size, sha256 });
    const analysisId = start.analysis_id;
    const channel = start.channel;
    this._wanted.add(channel);
    onStart?.({ analysisId, channel, cached: Boolean(start.cached) });
    if (start.cached || !start.upload) {
      onProgress?.(size, size);
      return { analysisId, channel, cached: Boolean(start.cached) };
    }
    const maxChunk = start.upload.max_chunk_bytes ?? this.session?.limits?.max_chunk_bytes ?? 256 * 1024;
    let offset = start.upload.offset ?? 0;
    let resync = offset > 0;
    let stalls = 0; // resyncs in a row without progress: bounded so a broken upload ends
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
        if (!this._ws) throw new SynthiaError({ code: "disconnected", temporary: true });
        this._ws.send(chunkFrame(analysisId, offset, bytes.subarray(offset, end)));
        const reported = await acked;
        offset = reported === end ? end : await this._durableOffset(analysisId);
        stalls = 0;
        onProgress?.(offset, size);
      } catch (err) {
        const retry = err instanceof SynthiaError && ["disconnected", "bad_chunk", "timeout"].includes(err.code);
        if (!retry || ++stalls > 8) throw err;
        resync = true;
      }
    }
    return { analysisId, channel, cached: false };
  }

  /**
   * Upload an image (File, Blob or bytes) and wait for its analysis: resolves with the
   * `analysis.result` event, rejects with SynthiaError on `analysis.error`. `onPartial` gets the
   * best parse so far as it streams; aborting `signal` sends `analysis.cancel`.
   */
  async analyzeImage(input: Blob | ArrayBuffer | Uint8Array, options: AnalyzeOptions = {}): Promise<AnalysisOutcome> {
    const { onPartial = null, signal = null, timeout = 300000 } = options;
    let analysisId: string | null = null;
    const early: Array<AnalysisOutcome | AnalysisFailure | AnalysisPartialEvent> = [];
    let settle: ((e: AnalysisOutcome | AnalysisFailure | AnalysisPartialEvent) => void) | null = null;
    const route = (e: AnalysisOutcome | AnalysisFailure | AnalysisPartialEvent) => {
      if (analysisId === null) early.push(e);
      else if (e.analysis_id === analysisId) settle?.(e);
    };
    const offs = [this.on("analysis.result", route), this.on("analysis.error", route), this.on("analysis.partial", route)];
    let onAbort: (() => void) | null = null;
    try {
      const outcome = new Promise<AnalysisOutcome>((resolve, reject) => {
        const timer = setTimeout(() => reject(new SynthiaError({ code: "timeout", message: "no analysis outcome", temporary: true })), timeout);
        const done = (fn: () => void) => { clearTimeout(timer); fn(); };
        settle = (e) => {
          if (e.event === "analysis.partial") onPartial?.(e.partial, e);
          else if (e.event === "analysis.result") done(() => resolve(e));
          else if (e.code !== "bad_chunk" && e.code !== "rate_limited") done(() => reject(new SynthiaError(e)));
        };
        if (signal) {
          onAbort = () => done(() => reject(new SynthiaError({ code: "cancelled", message: "analysis aborted" })));
          signal.addEventListener("abort", onAbort, { once: true });
        }
      });
      outcome.catch(() => {});
      const upload = await this.uploadImage(input, {
        ...options,
        onStart: (s) => {
          analysisId = s.analysisId;
          for (const e of early.splice(0)) route(e);
          options.onStart?.(s);
        },
      });
      if (signal) {
        signal.addEventListener("abort", () => { void this.cancelAnalysis(upload.analysisId).catch(() => {}); }, { once: true });
        if (signal.aborted) void this.cancelAnalysis(upload.analysisId).catch(() => {});
      }
      return await outcome;
    } finally {
      offs.forEach((off) => off());
      if (signal && onAbort) signal.removeEventListener("abort", onAbort);
    }
  }

  private async _durableOffset(analysisId: string): Promise<number> {
    return (await this._command("upload.status", { analysis_id: analysisId })).offset;
  }

  // The offset an `upload.progress` for this analysis reports (the answer to the chunk just
  // sent); rejects on `analysis.error` for it or a dropped socket.
  private _chunkAck(analysisId: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const cleanup = () => { clearTimeout(timer); offProgress(); offError(); offClose(); };
      const timer = setTimeout(() => { cleanup(); reject(new SynthiaError({ code: "timeout", temporary: true })); }, this.commandTimeout);
      const offProgress = this.on("upload.progress", (e) => {
        if (e.analysis_id === analysisId) { cleanup(); resolve(e.offset); }
      });
      const offError = this.on("analysis.error", (e) => {
        if (e.analysis_id === analysisId || (e.analysis_id === null && e.code === "rate_limited")) {
          cleanup();
          reject(new SynthiaError(e.code === "rate_limited" ? { ...e, code: "timeout", temporary: true } : e));
        }
      });
      const offClose = this.on("close", () => {
        cleanup();
        reject(new SynthiaError({ code: "disconnected", temporary: true }));
      });
    });
  }

  // -- connection machinery ---------------------------------------------------------------------

  private async _open(): Promise<void> {
    let token: string;
    const reason = this._tokenReason;
    try {
      token = await this._getToken({ reason });
    } catch (err) {
      const error = err instanceof SynthiaError ? err : new SynthiaError({ code: "token_error", message: String(err), temporary: true });
      this._emit("error", error);
      if (error.status === 401 || error.status === 403) {
        // The app could not get a token (its refresh token was refused): only a sign-in helps.
        this._authError({ code: TOKEN_EXPIRED, reason: "token refresh refused" }, error);
        return;
      }
      this._scheduleReconnect(null, "");
      return;
    }
    if (this.state === "closed") return;
    let ws: WebSocketLike;
    try {
      // The token rides in the subprotocol list, never in the URL (protocol §1).
      ws = new this._WebSocket(this.url, [SUBPROTOCOL, `bearer.${token}`]) as WebSocketLike;
    } catch (err) {
      this._emit("error", new SynthiaError({ code: "connect_failed", message: String(err), temporary: true }));
      this._scheduleReconnect(null, "");
      return;
    }
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    ws.onmessage = (msg) => this._onMessage(msg.data);
    ws.onerror = () => {}; // a close always follows; `ws` would otherwise throw on an unhandled error
    ws.onclose = (e) => this._onClose(ws, e.code, e.reason);
  }

  private _onMessage(data: unknown): void {
    if (typeof data !== "string") return; // the server sends text frames only
    let frame: any;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame && frame.id !== undefined && frame.ok !== undefined) this._onReply(frame);
    else if (frame && typeof frame.event === "string") this._onEvent(frame);
  }

  private _onReply(frame: { id: number; ok: boolean; error?: ErrorBody | null }): void {
    const pending = this._pending.get(frame.id);
    if (!pending) return;
    this._pending.delete(frame.id);
    clearTimeout(pending.timer);
    if (frame.ok) pending.resolve(frame);
    else pending.reject(new SynthiaError(frame.error ?? {}));
  }

  private _onEvent(frame: any): void {
    const { channel, offset, epoch } = frame;
    // Direct events (upload.progress, refused chunks, re-sent results) carry no channel sequence.
    if (channel && typeof offset === "number" && typeof epoch === "string" && frame.event !== "upload.progress") {
      const seen = this._positions.get(channel);
      // Replays after a reconnect may overlap live delivery: drop what was already seen.
      if (seen && seen.epoch === epoch && offset <= seen.offset) return;
      this._positions.set(channel, { offset, epoch });
    }
    switch (frame.event) {
      case "session.ready":
        void this._onReady(frame);
        return;
      case "session.expiring":
        void this._refreshSession();
        break;
      case "channel.reset":
        if (channel && frame.since) this._positions.set(channel, frame.since);
        break;
      default:
        break;
    }
    this._emit(frame.event, frame);
  }

  private async _onReady(frame: SessionReadyEvent): Promise<void> {
    const ws = this._ws;
    this.session = frame;
    const reconnect = this._everReady;
    this._everReady = true;
    // Catch up before declaring ready, so handlers never race the replay.
    const channels = [...new Set([...this._wanted, ...this._positions.keys()])];
    const resumed = new Set(channels.filter((c) => this._positions.has(c)));
    const results = await Promise.allSettled(channels.map((c) => this._subscribe(c)));
    if (ws !== this._ws) return; // dropped again while catching up: the next ready retries
    const lost: string[] = [];
    results.forEach((r, i) => {
      if (r.status === "fulfilled" && resumed.has(channels[i]) && !r.value.recovered) lost.push(channels[i]);
      if (r.status === "rejected" && !r.reason.temporary) {
        this._wanted.delete(channels[i]);
        this._positions.delete(channels[i]);
        this._emit("error", Object.assign(r.reason, { channel: channels[i] }));
      }
    });
    this._attempt = 0;
    this._expiredRetries = 0;
    this._setState("ready");
    this._emit("ready", { ...frame, reconnect, lost });
    for (const w of this._readyWaiters.splice(0)) w.resolve(frame);
  }

  private async _refreshSession(): Promise<void> {
    try {
      const token = await this._getToken({ reason: "expiring" });
      await this._command("auth.refresh", { token });
    } catch (err) {
      // Unrefreshed, the server closes with 4001 and the client reconnects with a fresh token.
      this._emit("error", err instanceof SynthiaError ? err : new SynthiaError({ code: "token_error", message: String(err) }));
    }
  }

  private _onClose(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this._ws) return;
    this._ws = null;
    for (const [id, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new SynthiaError({ code: "disconnected", message: "connection closed", temporary: true }));
      this._pending.delete(id);
    }
    if (this.state === "closed" || STOP_CODES.has(code)) {
      this._emit("close", { code, reason, willReconnect: false });
      this._finish({ code, reason });
      return;
    }
    if (AUTH_STOP_CODES.has(code) || (code === TOKEN_EXPIRED && this._expiredRetries >= 1)) {
      this._emit("close", { code, reason, willReconnect: false });
      const error = new SynthiaError({
        code: code === 4010 ? "session_revoked" : code === 4001 ? "token_expired" : reason || "token_invalid",
        message: `connection refused: ${code} ${reason}`.trim(),
        closeCode: code,
      });
      this._authError({ code, reason }, error);
      return;
    }
    if (code === TOKEN_EXPIRED) {
      // One fresh token, at once; a second 4001 in a row ends the client (no endless loop).
      this._expiredRetries += 1;
      this._tokenReason = "expired";
      this._emit("close", { code, reason, willReconnect: true, delay: 0 });
      this._setState("reconnecting");
      this._timer = setTimeout(() => void this._open(), 0);
      return;
    }
    this._tokenReason = "reconnect";
    this._scheduleReconnect(code, reason);
  }

  private _authError(info: CloseInfo, error: SynthiaError): void {
    if (info.code === 4003 || info.code === 4010) this._emit("revoked", info);
    this._emit("auth_error", { ...info, error });
    this._finish(info);
  }

  private _scheduleReconnect(code: number | null, reason: string): void {
    if (this.state === "closed") return;
    this._setState("reconnecting");
    let delay = backoffDelay(this._attempt, this.backoff);
    this._attempt += 1;
    if (code !== null) delay = Math.max(delay, retryHintMs(code, reason));
    if (code !== null) this._emit("close", { code, reason, willReconnect: true, delay });
    this._timer = setTimeout(() => void this._open(), delay);
  }

  private _finish(info: CloseInfo): void {
    if (this.state === "closed") return;
    this.closeInfo = info;
    this._setState("closed");
    for (const w of this._readyWaiters.splice(0)) w.reject(this._closedError());
    for (const [id, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new SynthiaError({ code: "closed", message: "client closed" }));
      this._pending.delete(id);
    }
  }

  private _closedError(): SynthiaError {
    const code = this.closeInfo?.code ?? null;
    return new SynthiaError({
      code: code === 4010 ? "session_revoked" : code === 4003 ? "unauthorized" : code === 4001 ? "token_expired" : "closed",
      message: this.closeInfo?.reason || "connection closed",
      closeCode: code,
    });
  }

  private _setState(state: ClientState): void {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", { state });
  }
}

/**
 * Create a client and connect it. `getToken()` is called on every (re)connect and on
 * `session.expiring`. Resolves once `session.ready` arrived (retrying temporary failures);
 * rejects with SynthiaError when the token is refused (4003/4010, or 4001 twice in a row).
 */
export async function connect(options: ClientOptions & { getToken: GetToken }): Promise<SynthiaClient> {
  const client = new SynthiaClient(options);
  await client.connect();
  return client;
}
