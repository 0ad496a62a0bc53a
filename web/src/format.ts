// Display helpers shared by both pages.

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function when(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dateTime.format(d);
}

export function count(n: number): string {
  return n.toLocaleString();
}

/** An activity state for people. */
export const STATE_LABELS: Record<string, string> = {
  editing: 'Editing',
  pending_review: 'Pending review',
  approved: 'Approved',
  refused: 'Refused',
  doing: 'Running',
  closed: 'Closed',
  open: 'Reopened',
};

/** An award type for people. */
export const KIND_LABELS: Record<string, string> = {
  description: 'Message',
  redeem_code: 'Redeem code',
  coupon: 'Coupon',
  physical: 'Physical prize',
};

export function kindLabel(kind: string): string {
  return KIND_LABELS[kind] ?? kind;
}

export function stateLabel(state: string): string {
  return STATE_LABELS[state] ?? state;
}
