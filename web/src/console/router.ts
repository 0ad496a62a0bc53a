// Path routing under /console (the server answers every /console/... with the console).

import { createElement, type ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

const listeners = new Set<() => void>();

export function navigate(href: string): void {
  if (href === window.location.pathname + window.location.search) return;
  window.history.pushState(null, '', href);
  notify();
}

function notify() {
  for (const l of listeners) l();
  // Move focus to the new page's content, as a full page load would.
  const main = document.getElementById('main');
  main?.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

window.addEventListener('popstate', () => {
  for (const l of listeners) l();
});

export function usePath(): string {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const l = () => setPath(window.location.pathname);
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
  return path;
}

export function useQuery(): URLSearchParams {
  usePath();
  return new URLSearchParams(window.location.search);
}

export function Link(props: {
  href: string;
  class?: string;
  current?: boolean;
  children: ComponentChildren;
}) {
  return createElement(
    'a',
    {
      href: props.href,
      class: props.class,
      'aria-current': props.current ? 'page' : undefined,
      onClick: (e: MouseEvent) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(props.href);
      },
    },
    props.children,
  );
}
