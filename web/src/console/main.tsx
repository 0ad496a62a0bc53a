import '../styles.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { clearToken, saveToken, takeToken, tokenRole } from '../token';
import { Notice, SignIn } from '../ui';
import { Activities } from './Activities';
import { ActivityPage } from './ActivityPage';
import { NewActivity } from './NewActivity';
import { RuleTrees } from './RuleTrees';
import { Link, navigate, usePath } from './router';

const TOKEN_KEY = 'lottery.admin-token';

function App() {
  const [token, setToken] = useState<string | null>(() => takeToken(TOKEN_KEY));
  const [why, setWhy] = useState<string | null>(null);
  const path = usePath();

  useEffect(() => {
    document.title = `${pageTitle(path)} · Lottery console`;
  }, [path]);

  if (!token) {
    return (
      <SignIn
        title="Lottery console"
        what="Admin token"
        onToken={(t) => {
          saveToken(TOKEN_KEY, t);
          setWhy(null);
          setToken(t);
        }}
      >
        {why && (
          <Notice kind="bad" live>
            {why}
          </Notice>
        )}
        <p>
          Sign in with an admin token. An operator prints one with{' '}
          <code>lottery token --admin</code>.
        </p>
      </SignIn>
    );
  }

  const signOut = () => {
    clearToken(TOKEN_KEY);
    setToken(null);
    navigate('/console');
  };
  const wrongRole = tokenRole(token) !== null && tokenRole(token) !== 'admin';
  const expired = () => {
    // Stay on the page asked for: signing in again comes back to it.
    clearToken(TOKEN_KEY);
    setWhy('The API refused the token (expired, or not signed by this server). Sign in again.');
    setToken(null);
  };

  let page;
  let m: RegExpExecArray | null;
  if (path === '/console' || path === '/console/') {
    page = <Activities token={token} onUnauthorized={expired} />;
  } else if (path === '/console/new') {
    page = <NewActivity token={token} onUnauthorized={expired} />;
  } else if (path === '/console/rule-trees') {
    page = <RuleTrees token={token} onUnauthorized={expired} />;
  } else if ((m = /^\/console\/activities\/([^/]+)$/.exec(path))) {
    page = <ActivityPage key={m[1]} token={token} id={decodeURIComponent(m[1])} onUnauthorized={expired} />;
  } else {
    page = (
      <>
        <h1>Not found</h1>
        <p>
          There is no such console page. <Link href="/console">Go to the activities</Link>.
        </p>
      </>
    );
  }

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="bar">
        <Link class="brand" href="/console">
          Lottery console
        </Link>
        <nav aria-label="Console">
          <ul>
            <li>
              <Link href="/console" current={path === '/console' || path.startsWith('/console/activities')}>
                Activities
              </Link>
            </li>
            <li>
              <Link href="/console/new" current={path === '/console/new'}>
                New activity
              </Link>
            </li>
            <li>
              <Link href="/console/rule-trees" current={path === '/console/rule-trees'}>
                Rule trees
              </Link>
            </li>
            <li>
              <a href="/docs">API docs</a>
            </li>
          </ul>
        </nav>
        <span class="spacer" />
        <button type="button" class="secondary" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {wrongRole && (
          <Notice kind="warn">
            This token is not an admin token: the API will refuse the console's requests.
          </Notice>
        )}
        {page}
      </main>
    </>
  );
}

function pageTitle(path: string): string {
  if (path === '/console/new') return 'New activity';
  if (path === '/console/rule-trees') return 'Rule trees';
  if (path.startsWith('/console/activities/')) return 'Activity';
  return 'Activities';
}

const root = document.getElementById('app');
if (root) render(<App />, root);
