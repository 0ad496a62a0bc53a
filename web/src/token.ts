// Tokens live in session storage: they last as long as the tab and never reach a server
// except in the Authorization header.
//
// A campaign may hand a player a link ending in `#token=...`. A URL fragment is never sent
// to a server (so it reaches no access log); the page moves it into session storage and
// removes it from the address bar and the history at once.

export function takeToken(storageKey: string): string | null {
  const hash = window.location.hash.startsWith('#') ? window.location.hash.slice(1) : '';
  const fromLink = new URLSearchParams(hash).get('token');
  if (fromLink) {
    saveToken(storageKey, fromLink);
    const clean = window.location.pathname + window.location.search;
    window.history.replaceState(window.history.state, '', clean);
    return fromLink.trim();
  }
  try {
    return sessionStorage.getItem(storageKey);
  } catch {
    return null;
  }
}

export function saveToken(storageKey: string, token: string): void {
  try {
    sessionStorage.setItem(storageKey, token.trim());
  } catch {
    // Storage may be disabled: the token then lasts until the page is left.
  }
}

export function clearToken(storageKey: string): void {
  try {
    sessionStorage.removeItem(storageKey);
  } catch {
    // Nothing stored.
  }
}

/** The role a token claims (read, not verified: the server verifies every request). */
export function tokenRole(token: string): string | null {
  const payload = token.split('.')[1];
  if (!payload) return null;
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json) as { role?: unknown };
    return typeof claims.role === 'string' ? claims.role : null;
  } catch {
    return null;
  }
}
