// Small accessible building blocks shared by both pages.

import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError } from './api';

let nextId = 0;
/** A stable id for wiring a label, hint and error to their control. */
export function useId(prefix: string): string {
  const [id] = useState(() => `${prefix}-${++nextId}`);
  return id;
}

interface FieldProps {
  label: string;
  hint?: ComponentChildren;
  error?: string | null;
  /** Renders the control, given its id and the ids describing it. */
  children: (id: string, describedBy: string | undefined, invalid: boolean) => ComponentChildren;
  class?: string;
  /** The control's id, when the caller needs to know it. */
  id?: string;
}

export function Field({ label, hint, error, children, class: cls, id: given }: FieldProps) {
  const generated = useId('f');
  const id = given ?? generated;
  const hintId = hint ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(' ') || undefined;
  return (
    <div class={`field ${cls ?? ''}`}>
      <label for={id}>{label}</label>
      {children(id, describedBy, Boolean(error))}
      {hint && (
        <p class="hint" id={hintId}>
          {hint}
        </p>
      )}
      {error && (
        <p class="error" id={errorId}>
          {error}
        </p>
      )}
    </div>
  );
}

export function Notice({
  kind = 'info',
  children,
  live,
}: {
  kind?: 'info' | 'ok' | 'warn' | 'bad';
  children: ComponentChildren;
  live?: boolean;
}) {
  return (
    <div class={`notice ${kind}`} role={live ? (kind === 'bad' ? 'alert' : 'status') : undefined}>
      {children}
    </div>
  );
}

/** An API error for people, with the request id to quote when reporting it. */
export function ErrorNotice({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : null;
  return (
    <Notice kind="bad" live>
      <strong>{e ? e.message : String(error)}</strong>
      {e?.requestId && <span class="muted"> (request {e.requestId})</span>}
    </Notice>
  );
}

export function SignIn({
  title,
  what,
  onToken,
  children,
}: {
  title: string;
  what: string;
  onToken: (token: string) => void;
  children?: ComponentChildren;
}) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  return (
    <main id="main">
      <h1>{title}</h1>
      {children}
      <form
        class="panel"
        onSubmit={(e) => {
          e.preventDefault();
          const t = value.trim();
          if (t.split('.').length !== 3) {
            setError('A token has three parts separated by dots. Paste the whole token.');
            return;
          }
          onToken(t);
        }}
      >
        <Field label={what} error={error} hint="It is kept in this tab only and sent to the API alone.">
          {(id, describedBy, invalid) => (
            <input
              id={id}
              type="password"
              autocomplete="off"
              spellcheck={false}
              value={value}
              aria-describedby={describedBy}
              aria-invalid={invalid}
              onInput={(e) => {
                setValue(e.currentTarget.value);
                setError(null);
              }}
            />
          )}
        </Field>
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}
