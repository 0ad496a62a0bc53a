// The shipping address of a physical prize won without one:
// PUT /api/v1/me/orders/{order_id}/shipping (422 names the bad field, 409 when the order no
// longer waits for an address).

import { useState } from 'preact/hooks';
import { ApiError, type Order, type ShippingAddress } from '../api';
import { ErrorNotice, Field } from '../ui';

type Key = keyof ShippingAddress;

const FIELDS: { key: Key; label: string; required: boolean; autocomplete: string; tel?: boolean }[] = [
  { key: 'recipient', label: 'Full name', required: true, autocomplete: 'name' },
  { key: 'phone', label: 'Phone', required: true, autocomplete: 'tel', tel: true },
  { key: 'line1', label: 'Address line 1', required: true, autocomplete: 'address-line1' },
  { key: 'line2', label: 'Address line 2 (optional)', required: false, autocomplete: 'address-line2' },
  { key: 'city', label: 'City', required: true, autocomplete: 'address-level2' },
  { key: 'region', label: 'Region or state (optional)', required: false, autocomplete: 'address-level1' },
  { key: 'postal_code', label: 'Postal code (optional)', required: false, autocomplete: 'postal-code' },
  { key: 'country', label: 'Country', required: true, autocomplete: 'country-name' },
];

/** The field a 422 names: the error body's `field`, or the message's leading name. */
function badField(e: ApiError): Key | null {
  const named = typeof e.details.field === 'string' ? e.details.field : null;
  const keys = FIELDS.map((f) => f.key as string);
  const fromBody = named?.replace(/^shipping(_address)?\./, '') ?? null;
  if (fromBody && keys.includes(fromBody)) return fromBody as Key;
  const m = /\b(recipient|phone|line1|line2|city|region|postal_code|country)\b/.exec(e.message);
  return m ? (m[1] as Key) : null;
}

export function AddressForm({
  order,
  call,
  onSaved,
}: {
  order: Order;
  call: (path: string, body: unknown) => Promise<unknown>;
  /** Called with what to tell the player once the order no longer waits for an address. */
  onSaved: (message: string) => void;
}) {
  const [values, setValues] = useState<Record<Key, string>>({
    recipient: '',
    phone: '',
    line1: '',
    line2: '',
    city: '',
    region: '',
    postal_code: '',
    country: '',
  });
  const [errors, setErrors] = useState<Partial<Record<Key, string>>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const missing: Partial<Record<Key, string>> = {};
    for (const f of FIELDS) {
      if (f.required && !values[f.key].trim()) missing[f.key] = `Enter your ${f.label.toLowerCase()}`;
    }
    setErrors(missing);
    setError(null);
    const first = FIELDS.find((f) => missing[f.key]);
    if (first) {
      document.getElementById(`ship-${order.order_id}-${first.key}`)?.focus();
      return;
    }
    const body: ShippingAddress = {
      recipient: values.recipient.trim(),
      phone: values.phone.trim(),
      line1: values.line1.trim(),
      city: values.city.trim(),
      country: values.country.trim(),
    };
    for (const k of ['line2', 'region', 'postal_code'] as const) {
      if (values[k].trim()) body[k] = values[k].trim();
    }
    setBusy(true);
    try {
      await call(`/api/v1/me/orders/${encodeURIComponent(order.order_id)}/shipping`, body);
      onSaved(`Thank you! Your ${order.award.name} will be sent to ${body.recipient}, ${body.city}.`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 422) {
        const k = badField(err);
        if (k) {
          setErrors({ [k]: err.message });
          document.getElementById(`ship-${order.order_id}-${k}`)?.focus();
        } else setError(err);
      } else if (err instanceof ApiError && err.status === 409) {
        onSaved(`Your ${order.award.name} no longer needs an address.`);
      } else {
        setError(err);
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="panel" onSubmit={submit} noValidate aria-label={`Shipping address for ${order.award.name}`}>
      <p>
        You won <strong>{order.award.name}</strong>. Tell us where to send it.
      </p>
      <div class="grid-2">
        {FIELDS.map((f) => (
          <Field key={f.key} id={`ship-${order.order_id}-${f.key}`} label={f.label} error={errors[f.key]}>
            {(id, describedBy, invalid) => (
              <input
                id={id}
                name={f.key}
                type="text"
                inputMode={f.tel ? 'tel' : 'text'}
                autocomplete={f.autocomplete}
                value={values[f.key]}
                aria-required={f.required}
                aria-invalid={invalid}
                aria-describedby={describedBy}
                onInput={(e) => {
                  const v = e.currentTarget.value;
                  setValues((vs) => ({ ...vs, [f.key]: v }));
                  if (errors[f.key]) setErrors((es) => ({ ...es, [f.key]: undefined }));
                }}
              />
            )}
          </Field>
        ))}
      </div>
      <ErrorNotice error={error} />
      <button type="submit" disabled={busy}>
        {busy ? 'Saving…' : 'Send my prize here'}
      </button>
    </form>
  );
}
