// The console and the play page in a real browser against a running `lottery` server.
// Run by crates/server/tests/browser.rs, which starts the server and passes:
//   LOTTERY_URL              the server's base URL
//   LOTTERY_ADMIN_TOKEN      an admin token
//   LOTTERY_USER_TOKEN       a player token (a player with no draws yet)
//   LOTTERY_UPCOMING_ID      an approved activity that opens tomorrow
//   LOTTERY_SOLD_OUT_ID      a running activity whose stock is all drawn
//   LOTTERY_ENDED_ID         an activity whose window closed yesterday
//   LOTTERY_ARTIFACTS        where screenshots go
//   LOTTERY_CHROMIUM         the browser (default /usr/bin/chromium)
// Exits 0 only if every step passed and the browser saw no console error, no failed
// request and no serious accessibility violation.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) {
    console.error(`missing ${name}`);
    process.exit(2);
  }
  return v;
};

const base = env('LOTTERY_URL');
const adminToken = env('LOTTERY_ADMIN_TOKEN');
const userToken = env('LOTTERY_USER_TOKEN');
const upcomingId = env('LOTTERY_UPCOMING_ID');
const soldOutId = env('LOTTERY_SOLD_OUT_ID');
const endedId = env('LOTTERY_ENDED_ID');
const artifacts = env('LOTTERY_ARTIFACTS', 'browser-artifacts');
const executablePath = env('LOTTERY_CHROMIUM', '/usr/bin/chromium');
mkdirSync(artifacts, { recursive: true });

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const TIMEOUT = 60_000;

const problems = [];
let closing = false;

function step(text) {
  console.log(`-- ${text}`);
}

function fail(text) {
  throw new Error(text);
}

/** Everything the browser reports that a person would see as broken. */
/**
 * Error answers a step provokes on purpose (a stand-in server failure): each allows that
 * many answers with this status to a URL ending so, and the browser's matching "Failed to
 * load resource" console lines.
 */
const expectedErrors = [];
const loadErrors = []; // statuses from "Failed to load resource" console lines

function expectErrors(status, urlEnd, times) {
  expectedErrors.push({ status, urlEnd, times, seen: 0 });
}

function watch(context, who) {
  context.setDefaultTimeout(TIMEOUT);
  context.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const load = /^Failed to load resource: the server responded with a status of (\d+)/.exec(msg.text());
    if (load) loadErrors.push({ who, status: Number(load[1]), text: msg.text() });
    else problems.push(`${who}: console error: ${msg.text()} (${msg.location().url})`);
  });
  context.on('weberror', (e) => problems.push(`${who}: uncaught error: ${e.error()}`));
  context.on('requestfailed', (req) => {
    if (!closing) problems.push(`${who}: request failed: ${req.method()} ${req.url()} ${req.failure()?.errorText}`);
  });
  context.on('response', (res) => {
    if (res.status() < 400) return;
    const url = new URL(res.url()).pathname;
    const expected = expectedErrors.find((e) => e.status === res.status() && url.endsWith(e.urlEnd) && e.seen < e.times);
    if (expected) expected.seen += 1;
    else problems.push(`${who}: HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
  });
}

/** Console lines about failed loads are fine only for the error answers expected. */
function checkLoadErrors() {
  for (const status of new Set(loadErrors.map((l) => l.status))) {
    const logged = loadErrors.filter((l) => l.status === status);
    const allowed = expectedErrors.filter((e) => e.status === status).reduce((t, e) => t + e.seen, 0);
    if (logged.length > allowed) {
      for (const l of logged.slice(allowed)) problems.push(`${l.who}: console error: ${l.text}`);
    }
  }
}

async function until(check, what, timeout = TIMEOUT) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  fail(`timed out waiting for ${what} (last: ${last})`);
}

/** The text as rendered (table cells and blocks apart), whitespace folded. */
async function textOf(locator) {
  return (await locator.innerText()).replace(/\s+/g, ' ').trim();
}

async function expectText(locator, pattern, what) {
  let seen = '';
  try {
    await until(async () => pattern.test((seen = await textOf(locator))), `${what} to match ${pattern}`);
  } catch (e) {
    fail(`${e.message}; the page shows: ${JSON.stringify(seen)}`);
  }
}

async function shot(page, name) {
  const path = join(artifacts, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`   screenshot ${path}`);
}

/** axe-core over the page as it is now: no serious or critical violation. */
async function axe(page, where) {
  const result = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  for (const v of result.violations) {
    const nodes = v.nodes.map((n) => `${n.target.join(' ')}: ${(n.failureSummary ?? '').replace(/\s+/g, ' ')}`);
    const line = `${where}: axe ${v.impact} ${v.id}: ${v.help} (${nodes.join('; ')})`;
    if (v.impact === 'serious' || v.impact === 'critical') problems.push(line);
    else console.log(`   note: ${line}`);
  }
  console.log(`   axe: ${where}: ${result.violations.length} violations, ${result.passes.length} rules passed`);
}

/** On a phone the page must not scroll sideways (tables scroll inside their own region). */
async function fitsTheScreen(page, where) {
  const wide = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth <= width) return [];
    const inScroller = (el) => el.closest('.table-wrap') !== null;
    return Array.from(document.querySelectorAll('body *'))
      .filter((el) => !inScroller(el) && el.getBoundingClientRect().right > width + 0.5)
      .slice(0, 5)
      .map((el) => `${el.tagName.toLowerCase()}.${el.className} right=${Math.round(el.getBoundingClientRect().right)}`);
  });
  if (wide.length > 0) problems.push(`${where}: wider than the screen: ${wide.join(', ')}`);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});

let exitCode = 0;
try {
  // ---------------------------------------------------------------- the admin's console
  const adminContext = await browser.newContext({ viewport: DESKTOP });
  watch(adminContext, 'console');
  const admin = await adminContext.newPage();

  step('admin signs in');
  await admin.goto(`${base}/console`);
  await admin.getByLabel('Admin token').fill(adminToken);
  await admin.getByRole('button', { name: 'Sign in' }).click();
  await admin.getByRole('heading', { name: 'Activities', level: 1 }).waitFor();
  await axe(admin, 'console: activities');
  await shot(admin, 'console-activities-desktop');

  step('admin fills in a new activity; the form checks itself as it is typed');
  await admin.getByRole('navigation').getByRole('link', { name: 'New activity' }).click();
  await admin.getByRole('heading', { name: 'New activity', level: 1 }).waitFor();
  const name = `Browser test draw ${Date.now()}`;
  const activityGroup = admin.getByRole('group', { name: 'Activity' });
  await activityGroup.getByLabel('Name').fill(name);
  await activityGroup.getByLabel('Description').fill('A phone for the first winner, a thank-you note for everyone after.');
  const stock = activityGroup.getByLabel('Stock (draws in all)');
  await stock.fill('12x');
  await expectText(activityGroup, /Enter a whole number/, 'the stock error');
  if ((await stock.getAttribute('aria-invalid')) !== 'true') fail('the bad stock is not marked invalid');
  await stock.fill('100');
  await activityGroup.getByLabel('Draws per player').fill('3');

  const prize1 = admin.getByRole('group', { name: 'Prize 1' });
  await prize1.getByLabel('Type').selectOption('physical');
  await prize1.getByLabel('Name').fill('Phone');
  await prize1.getByLabel('Content').fill('SKU-PHONE-1');
  await prize1.getByLabel('Count').fill('1');
  await prize1.getByLabel('Rate (%)').fill('100');
  await admin.getByRole('button', { name: 'Add a prize' }).click();
  const prize2 = admin.getByRole('group', { name: 'Prize 2' });
  await prize2.getByLabel('Type').selectOption('description');
  await prize2.getByLabel('Name').fill('Thank-you note');
  await prize2.getByLabel('Content').fill('Thanks for playing!');
  await prize2.getByLabel('Count').fill('100');
  const summary = admin.locator('#rate-summary');
  await prize2.getByLabel('Rate (%)').fill('5');
  await expectText(summary, /rates add up to 105%: at most 100%/i, 'the rate sum error');
  await prize2.getByLabel('Rate (%)').fill('0');
  await expectText(summary, /Rates add up to 100%\. No prize: 0% of draws\./, 'the no-prize remainder');
  await expectText(summary, /Prizes in all: 101 for a stock of 100 draws \(1 more prizes than draws\)/, 'counts versus stock');
  await prize1.getByLabel('Rate (%)').fill('60');
  await expectText(summary, /No prize: 40% of draws/, 'the remainder following the rates');
  await expectText(prize1, /About 60 wins expected over the whole stock: it will likely run out/, 'the count warning');
  await prize1.getByLabel('Rate (%)').fill('100');
  await admin.getByLabel('Fallback prize').selectOption({ label: 'Thank-you note' });

  step('admin previews the odds with the simulate endpoint');
  await admin.getByRole('button', { name: 'Preview odds' }).click();
  const chart = admin.locator('figure.chart');
  await chart.waitFor();
  await expectText(chart, /Odds preview/, 'the chart caption');
  const phoneRow = chart.getByRole('row', { name: /Phone/ });
  await expectText(phoneRow, /Phone 100% 100\.00% 100,000/, 'simulated versus configured rates of the phone');
  if ((await chart.locator('svg rect').count()) < 4) fail('the chart draws two bars per outcome');
  await axe(admin, 'console: new activity');
  await shot(admin, 'console-new-activity-desktop');

  step('admin creates the activity, then submits, approves and starts it');
  await admin.getByRole('button', { name: 'Create activity' }).click();
  await admin.waitForURL(/\/console\/activities\/\d+$/);
  const id = admin.url().split('/').pop();
  await admin.getByRole('heading', { name, level: 1 }).waitFor();
  const state = admin.getByTestId('state');
  const review = admin.locator('section', { has: admin.getByRole('heading', { name: 'Review' }) });
  const offered = async () => (await review.getByRole('button').allTextContents()).join(', ');
  const walk = [
    ['Editing', 'Submit for review, Close', 'Submit for review'],
    ['Pending review', 'Approve, Refuse, Back to editing', 'Approve'],
    ['Approved', 'Refuse, Start, Close', 'Start'],
    ['Running', 'Close', null],
  ];
  for (const [label, actions, next] of walk) {
    await expectText(state, new RegExp(`^${label}$`), `the state ${label}`);
    await until(async () => (await offered()) === actions, `only the actions ${actions} (offered: ${await offered()})`);
    if (next) await review.getByRole('button', { name: next }).click();
  }
  await expectText(admin.locator('[data-stat="draws"]'), /^0$/, 'no draws yet');
  if ((await admin.getByRole('row', { name: /Thank-you note \(fallback\)/ }).count()) !== 1) {
    fail('the fallback prize is marked');
  }
  await axe(admin, 'console: activity');
  // The console stays open: its statistics must follow the player's draws without a reload.
  await admin.evaluate(() => {
    window.__stillTheSamePage = true;
  });

  // ------------------------------------------------------------------ the player's page
  const playerContext = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
  watch(playerContext, 'play');
  const play = await playerContext.newPage();

  step('player opens a campaign link carrying the token in the fragment');
  await play.goto(`${base}/play/${id}#token=${userToken}`);
  await play.getByRole('heading', { name, level: 1 }).waitFor();
  if (play.url().includes('#') || play.url().includes(userToken)) fail(`the token stays in the address: ${play.url()}`);
  const kept = await play.evaluate(() => sessionStorage.getItem('lottery.player-token'));
  if (kept !== userToken) fail('the token is kept in session storage');
  const prizes = play.locator('ul.prizes');
  await expectText(prizes.locator('li').nth(0), /Phone Physical prize 100% chance 1 in all · 1 left/, 'the phone with its odds and count');
  await expectText(prizes.locator('li').nth(1), /Thank-you note Message 0% chance 100 in all · 100 left/, 'the note with its odds and count');
  await expectText(prizes.locator('li').nth(2), /No prize .* 0% chance/, 'the no-prize odds');
  await expectText(play.getByTestId('takes-left'), /Draws left: 3 of 3/, 'three draws left');
  await axe(play, 'play: before drawing');
  await fitsTheScreen(play, 'play: before drawing');
  await shot(play, 'play-phone');

  const drawButton = play.getByRole('button', { name: 'Draw', exact: true });
  const result = play.getByTestId('result');
  const drawRequests = [];
  play.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith(`/api/v1/activities/${id}/draw`)) drawRequests.push(r.headers()['idempotency-key']);
  });

  step('the server cannot tell how a draw went: the page retries with the same key, then says "try again"');
  // A stand-in answers the first four tries as the API does when a draw's outcome is not
  // known in time (503 outcome_unknown, Retry-After); the fifth reaches the server.
  let unknown = 0;
  const drawPath = `/api/v1/activities/${id}/draw`;
  expectErrors(503, drawPath, 4);
  await play.route(
    (url) => url.pathname === drawPath,
    async (route) => {
      if (unknown >= 4) return route.continue();
      unknown += 1;
      await route.fulfill({
        status: 503,
        headers: { 'Retry-After': '1' },
        json: { code: 'outcome_unknown', message: 'the outcome of the draw is not known yet; replay with the same Idempotency-Key' },
      });
    },
  );
  // By keyboard: focus the button and press Enter.
  await drawButton.focus();
  await play.keyboard.press('Enter');
  await expectText(play.locator('main'), /The draw could not be completed just now\. Try again: you will not lose a draw\./, 'the try-again message');
  await expectText(play.getByTestId('takes-left'), /Draws left: 3 of 3/, 'no draw used');
  if (drawRequests.length !== 4 || new Set(drawRequests).size !== 1) fail(`four tries with one key: ${JSON.stringify(drawRequests)}`);

  step('player draws until the quota is used, seeing each result');
  const expected = [
    /^You won: Phone! Tell us where to send it: the form is below\.$/,
    /^You won: Thank-you note! \(the prize drawn had run out; this one stands in\) Thanks for playing!$/,
    /^You won: Thank-you note! \(the prize drawn had run out; this one stands in\) Thanks for playing!$/,
  ];
  for (let i = 0; i < 3; i++) {
    await drawButton.click();
    await expectText(play.getByTestId('takes-left'), new RegExp(`Draws left: ${2 - i} of 3`), `${2 - i} draws left`);
    await expectText(result, expected[i], `the result of draw ${i + 1}`);
    await until(async () => (await play.getByTestId('outcomes').locator('li').count()) === i + 1, `${i + 1} results listed`);
    console.log(`   draw ${i + 1}: ${await textOf(result)}`);
  }
  if ((await play.getByTestId('outcomes').locator('li').count()) !== 3) fail('each of the three results is listed');
  // The retried draw went through under the key of its first try; each later one has its own.
  const keys = drawRequests.slice(4);
  if (keys.length !== 3 || keys[0] !== drawRequests[0] || new Set(keys).size !== 3 || keys.some((k) => !k || k.length < 16)) {
    fail(`each draw sends its own Idempotency-Key, a retry the same: ${JSON.stringify(drawRequests)}`);
  }
  await expectText(play.getByTestId('blocked'), /You have used all your draws \(3 of 3\)/, 'the quota-used message');
  if (await drawButton.isEnabled()) fail('the draw button is disabled once the quota is used');
  await expectText(play.getByTestId('wins'), /Phone.*Thank-you note.*Thank-you note|Thank-you note.*Phone/, 'the past wins');

  step("player gives the phone's shipping address on the page");
  const form = play.getByRole('form', { name: 'Shipping address for Phone' });
  await form.waitFor();
  await expectText(admin.locator('[data-stat="awaiting_address"]'), /^1$/, 'the console counting the order awaiting an address');
  await form.getByRole('button', { name: 'Send my prize here' }).click();
  await expectText(form, /Enter your full name/, 'the missing-name message');
  await form.getByLabel('Full name').fill('Ada Player');
  await form.getByLabel('Phone').fill('+44 20 7946 0000');
  await form.getByLabel('Address line 1').fill('1 Test Street');
  await form.getByLabel('City').fill('London');
  await form.getByLabel('Postal code (optional)').fill('N1 9GU');
  // The server's checks go further than the page's: its 422 names the field, marked on the page.
  expectErrors(422, '/shipping', 1);
  await form.getByLabel('Country').fill('U');
  await form.getByRole('button', { name: 'Send my prize here' }).click();
  await expectText(form, /country must be at least 2 characters/, 'the server naming the bad field');
  if ((await form.getByLabel('Country').getAttribute('aria-invalid')) !== 'true') fail('the field the server named is marked invalid');
  await form.getByLabel('Country').fill('United Kingdom');
  await fitsTheScreen(play, 'play: address form');
  await shot(play, 'play-address-phone');
  await form.getByRole('button', { name: 'Send my prize here' }).click();
  await expectText(play.locator('main'), /Thank you! Your Phone will be sent to Ada Player, London\./, 'the address confirmation');
  await until(async () => (await play.locator('[data-grant="awaiting_address"]').count()) === 0, 'no prize waiting for an address');
  await axe(play, 'play: after drawing');
  await fitsTheScreen(play, 'play: after drawing');
  await shot(play, 'play-after-draws-phone');
  await play.setViewportSize(DESKTOP);
  await shot(play, 'play-desktop');

  step('a draw that has not started says so');
  await play.goto(`${base}/play/${upcomingId}`);
  await expectText(play.getByTestId('blocked'), /The draw has not started yet\. It opens/, 'the not-started message');
  if (await drawButton.isEnabled()) fail('no draw before the start');

  step('a sold-out draw and an ended one say so');
  await play.goto(`${base}/play/${soldOutId}`);
  await expectText(play.getByTestId('blocked'), /This draw is sold out: every draw has been taken\./, 'the sold-out message');
  if (await drawButton.isEnabled()) fail('no draw when sold out');
  await play.goto(`${base}/play/${endedId}`);
  await expectText(play.getByTestId('blocked'), /This draw has ended/, 'the ended message');
  if (await drawButton.isEnabled()) fail('no draw after the end');

  step("the admin's statistics follow, without a reload");
  await expectText(admin.locator('[data-stat="draws"]'), /^3$/, 'three draws');
  await expectText(admin.locator('[data-stat="wins"]'), /^3$/, 'three prizes won');
  await expectText(admin.locator('[data-stat="stock_left"]'), /^97 \/ 100$/, 'stock left');
  await expectText(admin.getByRole('row', { name: /^Phone/ }).locator('[data-stat="won"]'), /^1$/, 'the phone won once');
  await expectText(admin.getByRole('row', { name: /^Thank-you note/ }).locator('[data-stat="won"]'), /^2$/, 'the note won twice');
  await expectText(admin.locator('[data-stat="granted"]'), /^3$/, 'orders granted');
  await expectText(admin.locator('[data-stat="pending"]'), /^0$/, 'no order pending');
  await expectText(admin.locator('[data-stat="awaiting_address"]'), /^0$/, 'no order awaiting an address');
  if (!(await admin.evaluate(() => window.__stillTheSamePage === true))) fail('the console page was reloaded');
  await shot(admin, 'console-activity-desktop');
  await admin.setViewportSize(PHONE);
  await fitsTheScreen(admin, 'console: activity (phone)');
  await shot(admin, 'console-activity-phone');
  await axe(admin, 'console: activity (phone)');
  await admin.setViewportSize(DESKTOP);

  step('admin finds the activity by state and by name');
  await admin.getByRole('navigation').getByRole('link', { name: 'Activities' }).click();
  await admin.getByRole('heading', { name: 'Activities', level: 1 }).waitFor();
  await admin.getByLabel('State').selectOption('doing');
  await until(async () => (await admin.getByRole('link', { name }).count()) === 1, 'the running activity listed');
  await admin.getByLabel('State').selectOption('editing');
  await until(async () => (await admin.getByRole('link', { name }).count()) === 0, 'the activity filtered out');
  await admin.getByLabel('State').selectOption('');
  await admin.getByLabel('Name contains').fill(name.slice(-8));
  await admin.getByRole('button', { name: 'Search' }).click();
  await until(async () => (await admin.locator('tbody tr').count()) === 1, 'exactly the activity searched for');
  await admin.setViewportSize(PHONE);
  await fitsTheScreen(admin, 'console: activities (phone)');
  await shot(admin, 'console-activities-phone');
  await admin.setViewportSize(DESKTOP);

  step('admin creates a rule tree and sees it listed');
  await admin.getByRole('navigation').getByRole('link', { name: 'Rule trees' }).click();
  await admin.getByRole('heading', { name: 'Rule trees', level: 1 }).waitFor();
  const treeName = `By gender ${Date.now()}`;
  await admin.getByLabel('Tree name').fill(treeName);
  await admin.getByRole('group', { name: 'Node 2' }).getByLabel('Activity id').fill(id);
  await admin.getByRole('group', { name: 'Node 3' }).getByLabel('Activity id').fill(upcomingId);
  await admin.getByRole('button', { name: 'Create rule tree' }).click();
  await expectText(admin.locator('main'), /Rule tree \d+ created\./, 'the tree created');
  const treeRow = admin.getByRole('row', { name: new RegExp(treeName) });
  await until(async () => (await treeRow.count()) === 1, 'the new tree listed');
  await treeRow.getByRole('button', { name: `View ${treeName}` }).click();
  await expectText(admin.locator('section.panel'), new RegExp(`Node 2: gives activity ${id}`), 'the tree shown');
  await axe(admin, 'console: rule trees');
  await shot(admin, 'console-rule-trees-desktop');

  closing = true;
  await adminContext.close();
  await playerContext.close();
} catch (e) {
  console.error(`FAILED: ${e instanceof Error ? e.stack : e}`);
  exitCode = 1;
} finally {
  closing = true;
  await browser.close();
}

checkLoadErrors();
for (const e of expectedErrors) {
  if (e.seen !== e.times) problems.push(`expected ${e.times} answers ${e.status} to ${e.urlEnd}, saw ${e.seen}`);
}
if (problems.length > 0) {
  console.error(`The browser reported ${problems.length} problem(s):`);
  for (const p of problems) console.error(`  ${p}`);
  exitCode = 1;
}
console.log(exitCode === 0 ? 'browser test passed' : 'browser test failed');
process.exit(exitCode);
