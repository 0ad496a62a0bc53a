// The REST API, same origin. Every error answer has one shape: {code, message, request_id}.

export interface ErrorBody {
  code: string;
  message: string;
  request_id?: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly requestId?: string;
  /** Seconds, from a Retry-After header. */
  readonly retryAfter?: number;
  /** The whole error body, for fields beyond code and message. */
  readonly details: Record<string, unknown>;

  constructor(status: number, body: ErrorBody & Record<string, unknown>, retryAfter?: number) {
    super(body.message);
    this.details = body;
    this.status = status;
    this.code = body.code;
    this.requestId = body.request_id;
    this.retryAfter = retryAfter;
  }
}

export interface CallOptions {
  body?: unknown;
  headers?: Record<string, string>;
}

export async function call<T>(
  token: string | null,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  options: CallOptions = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', ...options.headers };
  if (token) headers.Authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body, cache: 'no-store' });
  } catch {
    throw new ApiError(0, { code: 'network', message: 'The server could not be reached.' });
  }
  const text = await response.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) {
    const err = (parsed ?? {}) as Partial<ErrorBody> & Record<string, unknown>;
    const retry = Number(response.headers.get('Retry-After'));
    throw new ApiError(
      response.status,
      {
        ...err,
        code: err.code ?? 'error',
        message: err.message ?? `The server answered ${response.status}.`,
        request_id: err.request_id,
      },
      Number.isFinite(retry) && retry > 0 ? retry : undefined,
    );
  }
  return parsed as T;
}

/** A random key for the Idempotency-Key header (works on plain-http origins too). */
export function newKey(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Wire types, as in /openapi.json. 64-bit ids are strings.

export interface ActivitySummary {
  activity_id: string;
  name: string;
  state: string;
  begin_time: string;
  end_time: string;
  stock: number;
  take_limit: number;
  strategy_id: string;
  creator: string;
  actions: string[];
}

export interface ActivityList {
  items: ActivitySummary[];
  offset: number;
  limit: number;
}

export interface AwardView {
  award_id: string;
  type: string;
  name: string;
  content: string;
  count: number;
  rate: string;
  left: number;
  won: number;
}

export interface OrderCounts {
  granted: number;
  pending: number;
  awaiting_address: number;
  failed: number;
}

export interface ActivityDetail extends ActivitySummary {
  description: string;
  stock_left: number;
  draws: number;
  wins: number;
  orders: OrderCounts;
  strategy: {
    strategy_id: string;
    mode: string;
    fallback_award_id: string | null;
    awards: AwardView[];
  };
}

export interface Deployed {
  activity_id: string;
  strategy_id: string;
  award_ids: string[];
  state: string;
}

export interface Simulation {
  draws: number;
  nothing: number;
  awards: { award_id: string; rate: string; wins: number; observed: number }[];
}

export interface PublicAward {
  award_id: string;
  type: string;
  name: string;
  rate: string;
  count: number;
  left: number;
}

export interface PublicActivity {
  activity_id: string;
  name: string;
  description: string;
  state: string;
  begin_time: string;
  end_time: string;
  stock_left: number;
  take_limit: number;
  mode: string;
  awards: PublicAward[];
}

export interface MyActivity {
  activity_id: string;
  take_limit: number;
  takes_used: number;
  takes_left: number;
}

export interface DrawnAward {
  award_id: string;
  type: string;
  name: string;
  content: string;
}

export interface DrawResponse {
  result: 'win' | 'lose';
  activity_id: string;
  take_id: string;
  award?: DrawnAward;
  order_id?: string;
  fallback: boolean;
  replayed: boolean;
  grant_state?: string;
}

export interface Order {
  order_id: string;
  take_id: string;
  activity_id: string;
  award: DrawnAward;
  fallback: boolean;
  grant_state: string;
  delivery: string | null;
  created_at: string;
  granted_at: string | null;
}

export interface OrderList {
  items: Order[];
}

export interface ShippingAddress {
  recipient: string;
  phone: string;
  line1: string;
  line2?: string;
  city: string;
  region?: string;
  postal_code?: string;
  country: string;
}

export interface TreeSummary {
  tree_id: string;
  name: string;
  nodes: number;
  lines: number;
}

export interface TreeList {
  items: TreeSummary[];
  offset: number;
  limit: number;
}

export interface TreeNode {
  id: number;
  kind: 'stem' | 'fruit';
  rule_key?: string;
  value?: string;
}

export interface TreeLine {
  from: number;
  to: number;
  op: string;
  value: string;
}

export interface Tree {
  tree_id: string;
  name: string;
  root: number;
  nodes: TreeNode[];
  lines: TreeLine[];
}
