/**
 * Types of the nowgate browser client (now.mjs, and now.js as a classic script or CommonJS).
 *
 * Untyped:  const now = connect();            // every server function: (...args) => Promise<unknown>
 * Typed:    import type { Contract } from './contract';   // written by `nowgate types POLICY`
 *           const now = connect<Contract>();
 *           now.syncPosition({ left: 1, top: 2 });        // checked against the policy's handlers
 *           now.updatePosition = (p) => { p.left; };       // a client function, typed too
 * Classic:  declare const now: Now<Contract>;              // the global from <script src=now.js>
 */

/** What `nowgate types` writes: the policy's `now` object, as TypeScript. */
export interface NowContract {
  /** Server functions: their parameters and the result the handler returns. */
  functions: { [name: string]: (...args: any[]) => unknown };
  /** Client functions the page implements: what the server sends and expects back. */
  clientFunctions: { [name: string]: (...args: any[]) => unknown };
  /** The variables the server shares, by scope. */
  vars: {
    everyone: { readonly [name: string]: unknown };
    groups: { readonly [group: string]: { readonly [name: string]: unknown } };
    client: { readonly [name: string]: unknown };
  };
}

/** The contract when none is given: anything goes, results are `unknown`. */
export interface AnyContract extends NowContract {}

/** Errors: a number is the server's JSON-RPC code, a string a local condition. */
export type NowErrorCode =
  | number
  | 'disconnected'
  | 'queue_full'
  | 'timeout'
  | 'closed'
  | 'invalid_welcome';

export declare class NowError extends Error {
  constructor(code: NowErrorCode, message: string, data?: unknown);
  readonly name: 'NowError';
  readonly code: NowErrorCode;
  /** For -32029 (slow down): { retry_after: seconds }; for -32602: the validation errors. */
  readonly data?: unknown;
}

export type NowState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

export interface Welcome {
  client_id: string;
  token: string;
  resumed: boolean;
  functions: string[];
  client_functions: string[];
  vars: unknown;
  /** Recovery extension: present when the server numbers the messages it sends. */
  stream?: { epoch: string; offset: number };
  recovered?: boolean;
  [extension: string]: unknown;
}

export interface ConnectInfo {
  clientId: string;
  resumed: boolean;
  /** null: the server keeps no history; false: missed messages are lost, re-read vars. */
  recovered: boolean | null;
  welcome: Welcome;
}

export interface DisconnectInfo {
  code: number;
  reason: string;
  reconnecting: boolean;
  delay: number | null;
}

export interface ChangeInfo {
  scope: string;
  path: string;
  value: unknown;
  deleted: boolean;
}

export interface NowEvents {
  connect: ConnectInfo;
  reconnect: ConnectInfo;
  disconnect: DisconnectInfo;
  change: ChangeInfo;
  error: unknown;
}

type Result<T> = Promise<Awaited<T>>;
type Callable<F> = F extends (...args: infer A) => infer R ? (...args: A) => Result<R> : never;
type Answer<F> = F extends (...args: infer A) => infer R ? (...args: A) => R | Promise<R> : never;

/** The API every `now` has (on its prototype). */
export interface NowApi<C extends NowContract> {
  /** Call a server function by name (also reachable as now.name(...)). */
  call<K extends keyof C['functions'] & string>(
    name: K,
    ...args: Parameters<C['functions'][K]>
  ): Result<ReturnType<C['functions'][K]>>;
  /** Send without waiting for an answer; false when it could not even be queued. */
  notify<K extends keyof C['functions'] & string>(
    name: K,
    ...args: Parameters<C['functions'][K]>
  ): boolean;
  /** Write a client-writable variable declared in the policy. */
  setVar(scope: string, path: string, value: unknown): Promise<unknown>;
  /** Resolves at the next (or current) welcome; rejects if the client stopped for good. */
  ready(): Promise<ConnectInfo>;
  on<E extends keyof NowEvents>(type: E, listener: (event: NowEvents[E]) => void): () => void;
  off<E extends keyof NowEvents>(type: E, listener: (event: NowEvents[E]) => void): void;
  /** Start again after close() or a refused hello. */
  connect(): void;
  /** Stop for good: close the socket, reject waiting calls with code "closed". */
  close(): void;
  /** The server's variables: a deep-frozen snapshot, replaced on every change. */
  readonly vars: Readonly<C['vars']>;
  readonly clientId: string | null;
  readonly state: NowState;
}

/** `now`: the API, one method per server function, and the client functions the page sets.
 * Without a contract (names unknown) any other property is allowed, as in plain JavaScript. */
export type Now<C extends NowContract = AnyContract> = string extends keyof C['functions']
  ? NowApi<C> & { [name: string]: any }
  : TypedNow<C>;

export type TypedNow<C extends NowContract> = NowApi<C> & {
  readonly [K in keyof C['functions']]: Callable<C['functions'][K]>;
} & {
  -readonly [K in keyof C['clientFunctions']]?: Answer<C['clientFunctions'][K]>;
};

export interface Storage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface TransportHandlers {
  open(): void;
  receive(text: string): void;
  close(code: number, reason: string): void;
}

export interface Transport {
  send(text: string): void;
  close(code: number, reason: string): void;
}

export type TransportFactory = (url: string, handlers: TransportHandlers) => Transport;

export interface ConnectOptions {
  /** A path on the page's host ("/ws", the default) or a ws(s):// URL. */
  url?: string;
  /** The application credential sent in every hello (a function is asked each time). */
  auth?: string | null | (() => string | null | undefined);
  /** Calls waiting while disconnected (100). */
  queueLimit?: number;
  /** Milliseconds before a call rejects with code "timeout" (30000; 0: never). */
  callTimeout?: number;
  /** Reconnect backoff: random() * min(cap, base * 2^n) milliseconds (250, 10000). */
  backoffBase?: number;
  backoffCap?: number;
  /** Where the resume token lives (sessionStorage in a browser). */
  storage?: Storage;
  transport?: TransportFactory;
  timers?: {
    setTimeout(fn: () => void, ms: number): unknown;
    clearTimeout(handle: unknown): void;
  };
  random?: () => number;
  /** false: wait for now.connect(). */
  autoconnect?: boolean;
}

/** A client for the page's gateway: WebSocket transport, sessionStorage for the token. */
export declare function connect<C extends NowContract = AnyContract>(options?: ConnectOptions): Now<C>;
/** The protocol core: bring your own transport (tests, other runtimes). */
export declare function createNow<C extends NowContract = AnyContract>(
  options: ConnectOptions & { transport: TransportFactory },
): Now<C>;
/** The older name of createNow. */
export declare const createClient: typeof createNow;
export declare function webSocketTransport(url: string, handlers: TransportHandlers): Transport;
export declare function memoryStorage(): Storage;
export declare function backoffDelay(
  attempt: number,
  random: () => number,
  base: number,
  cap: number,
): number;
