import '../styles.css';
import { render } from 'preact';
import { useState } from 'preact/hooks';
import { clearToken, saveToken, takeToken, tokenRole } from '../token';
import { Notice, SignIn } from '../ui';
import { Game } from './Game';

const TOKEN_KEY = 'lottery.player-token';

function activityId(): string {
  const m = /^\/play\/([^/]+)\/?$/.exec(window.location.pathname);
  return m ? decodeURIComponent(m[1]) : '';
}

function App() {
  const [token, setToken] = useState<string | null>(() => takeToken(TOKEN_KEY));
  const [why, setWhy] = useState<string | null>(null);
  const id = activityId();

  if (!token || tokenRole(token) === 'admin') {
    return (
      <SignIn
        title="Prize draw"
        what="Your player token"
        onToken={(t) => {
          if (tokenRole(t) === 'admin') {
            setWhy('That is an admin token. The prize draw needs a player token.');
            return;
          }
          saveToken(TOKEN_KEY, t);
          setWhy(null);
          setToken(t);
        }}
      >
        {why && <Notice kind="bad" live>{why}</Notice>}
        {token && tokenRole(token) === 'admin' && !why && (
          <Notice kind="warn">An admin token cannot draw: sign in with a player token.</Notice>
        )}
        <p>
          To take part, sign in with the token the campaign gave you. Most campaigns send a link that
          signs you in by itself.
        </p>
      </SignIn>
    );
  }
  return (
    <Game
      id={id}
      token={token}
      onSignOut={(reason) => {
        clearToken(TOKEN_KEY);
        setWhy(reason ?? null);
        setToken(null);
      }}
    />
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
