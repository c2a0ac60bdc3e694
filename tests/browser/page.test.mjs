// Browser tests of the Tidings page in Debian's headless Chromium (playwright-core).
//
// Starts the real server (the binary the Rust tests built, the local SmolLM2 model and
// embedder) on a free loopback port with the fixture feed replayed, then drives the page as a
// person would: ask, watch the answer stream, open a citation, regenerate and step between
// versions, edit an answer and continue from it, two conversations streaming side by side,
// a pushed post and a post published to NATS appearing in the live sidebar (with the source's
// status), hostile markup rendered inert, and the digest
// view (create, run over the replayed feed, stories with their sources, a quiet window).
// Screenshots go to the folder printed at the start (TIDINGS_SCREENSHOTS overrides it).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const AS_OF = "2024-05-10T18:00:00Z";
const shots = process.env.TIDINGS_SCREENSHOTS || join(here, "screenshots");
const binary = process.env.TIDINGS_BIN ||
  join(process.env.CARGO_TARGET_DIR || join(repo, "target"), "debug", "tidings");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

let server, browser, base, dataDir, serverLog = "";
// A live NATS JetStream source (the local server at 127.0.0.1:4222), on a stream of this run.
const natsStream = `TIDINGS_BROWSER_${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const natsSubject = `tidings.browser.${natsStream.toLowerCase()}`;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => ok(port)); });
    s.on("error", fail);
  });
}

async function waitFor(check, what, tries = 1200) {
  for (let i = 0; i < tries; i++) {
    try { if (await check()) return; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}; server log:\n${serverLog.slice(-4000)}`);
}

async function push(posts) {
  const r = await fetch(`${base}/v1/posts`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(posts),
  });
  assert.equal(r.status, 200, await r.text());
}

async function shot(page, name) {
  const file = join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

before(async () => {
  assert.ok(existsSync(binary), `the server binary ${binary} exists (cargo test --workspace --all-targets builds it)`);
  assert.ok(existsSync(chromiumPath), `Chromium at ${chromiumPath} (scripts/setup.sh installs Debian's chromium)`);
  mkdirSync(shots, { recursive: true });
  console.log(`screenshots folder: ${shots}`);
  dataDir = mkdtempSync(join(tmpdir(), "tidings-browser-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const config = join(dataDir, "tidings.toml");
  writeFileSync(config, `[[sources.define]]\nkind = "nats"\nstream = "${natsStream}"\nsubjects = ["${natsSubject}"]\n`);
  server = spawn(binary, ["--config", config, "--data-dir", dataDir, "serve", "--bind", `127.0.0.1:${port}`,
    "--replay", join(repo, "tests/fixtures/chat_feed.jsonl"), "--fast"], {
    cwd: repo,
    env: { ...process.env, RUST_LOG: "warn", TIDINGS__MODEL__CONTEXT_TOKENS: "2048", TIDINGS__MODEL__LOCAL: "smollm2-135m" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stdout.on("data", (d) => { serverLog += d; });
  server.stderr.on("data", (d) => { serverLog += d; });
  await waitFor(async () => {
    const r = await fetch(`${base}/readyz`);
    const v = await r.json();
    return v.checks.text_index.posts === 12 && v.checks.vector_index.pending === 0 && v.checks.vector_index.caught_up;
  }, "the server with the fixture feed indexed");
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill("SIGTERM");
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function openPage() {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(`${base}/?as_of=${encodeURIComponent(AS_OF)}`);
  return { page, errors };
}

const pane = (page, i = 0) => page.locator('[data-testid="pane"]').nth(i);

async function askIn(p, question) {
  await p.locator('[data-testid="input"]').fill(question);
  await p.locator('[data-testid="send"]').click();
}

async function waitForAnswers(p, n) {
  await p.locator('[data-testid="msg-streaming"]').waitFor({ state: "detached", timeout: 120_000 });
  await assert.doesNotReject(p.locator('[data-testid="msg-assistant"]').nth(n - 1).waitFor({ timeout: 120_000 }));
}

test("ask, stream, cite, regenerate, step versions, edit and continue", async () => {
  const { page, errors } = await openPage();
  const p = pane(page);
  // The start screen offers questions from what is trending in the feed.
  await p.locator('[data-testid="suggestion"]').first().waitFor();
  const suggestions = await p.locator('[data-testid="suggestion"]').allTextContents();
  assert.ok(suggestions.some((s) => /riverton/i.test(s)), `trending suggestions: ${suggestions}`);
  await shot(page, "01-start");

  await askIn(p, "Is the Miller Street bridge open?");
  // The answer streams into a placeholder, then becomes a stored answer.
  await p.locator('[data-testid="msg-streaming"]').waitFor();
  await waitForAnswers(p, 1);
  const answer = p.locator('[data-testid="msg-assistant"]').last();
  const meta = await answer.locator('[data-testid="answer-meta"]').textContent();
  assert.match(meta, /as of 2024-05-10 18:00 UTC/);
  assert.match(meta, /cited post/);
  // A numbered citation opens its post card (author, time, text, link).
  const cite = answer.locator('[data-testid="cite"]').first();
  await cite.click();
  const card = answer.locator('[data-testid="post-card"]').first();
  await card.waitFor();
  const cardText = await card.textContent();
  assert.match(cardText, /@\w+/);
  assert.match(cardText, /2024-05-10/);
  assert.ok((await answer.locator('[data-testid="followup"]').count()) >= 1, "follow-up suggestions");
  await shot(page, "02-answer-with-citation");

  // Regenerate: a second version; step back and forth.
  await answer.locator('[data-testid="regenerate"]').click();
  await waitForAnswers(p, 1);
  const label = () => p.locator('[data-testid="msg-assistant"]').last().locator('[data-testid="version-label"]');
  await label().waitFor();
  assert.equal(await label().textContent(), "2 / 2");
  await p.locator('[data-testid="msg-assistant"]').last().locator('[data-testid="version-prev"]').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="msg-assistant"] [data-testid="version-label"]')?.textContent === "1 / 2");
  await p.locator('[data-testid="msg-assistant"]').last().locator('[data-testid="version-next"]').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="msg-assistant"] [data-testid="version-label"]')?.textContent === "2 / 2");
  await shot(page, "03-versions");

  // Edit the answer in the markdown editor (with preview), save, continue from it.
  await p.locator('[data-testid="msg-assistant"]').last().locator('[data-testid="edit"]').click();
  const editor = p.locator('[data-testid="editor"]');
  await editor.waitFor();
  await editor.locator('[data-testid="editor-text"]').fill("**Edited by a person:** the Miller Street bridge is *closed* [1].");
  assert.equal(await editor.locator('[data-testid="editor-preview"] strong').textContent(), "Edited by a person:");
  await shot(page, "04-editor");
  await editor.locator('[data-testid="editor-save"]').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="msg-assistant"] [data-testid="version-label"]')?.textContent === "3 / 3");
  const edited = p.locator('[data-testid="msg-assistant"]').last();
  assert.match(await edited.locator('[data-testid="answer-text"]').textContent(), /Edited by a person: the Miller Street bridge is closed/);
  assert.equal(await edited.locator('[data-testid="answer-text"] strong').textContent(), "Edited by a person:");

  await askIn(p, "Are the Riverton schools open tomorrow?");
  await waitForAnswers(p, 2);
  // The follow-up hangs under the edited answer.
  const tree = await page.evaluate(async () => {
    const list = await (await fetch("/v1/conversations")).json();
    return (await fetch(`/v1/conversations/${list.data[0].id}`)).json();
  });
  const byId = new Map(tree.messages.map((m) => [m.id, m]));
  const path = tree.active_path.map((id) => byId.get(id));
  assert.equal(path.length, 4);
  assert.equal(path[1].origin, "edited");
  assert.equal(path[2].parent_id, path[1].id);
  assert.equal(path[2].content, "Are the Riverton schools open tomorrow?");
  await shot(page, "05-continued-after-edit");
  assert.deepEqual(errors, []);
  await page.close();
});

test("two conversations stream side by side", async () => {
  const { page, errors } = await openPage();
  await page.locator('[data-testid="new-tab"]').click();
  await page.locator('[data-testid="layout"]').click();
  assert.equal(await page.locator('[data-testid="pane"]:visible').count(), 2);
  await pane(page, 0).locator('[data-testid="input"]').fill("Is the Miller Street bridge open?");
  await pane(page, 1).locator('[data-testid="input"]').fill("Who won the game tonight?");
  // Click both in one go: both panes show a streaming answer at the same time.
  const streaming = await page.evaluate(() => {
    const sends = document.querySelectorAll('[data-testid="send"]');
    sends[0].click();
    sends[1].click();
    return document.querySelectorAll('[data-testid="msg-streaming"]').length;
  });
  assert.equal(streaming, 2);
  assert.equal(await page.locator(".tab.streaming").count(), 2);
  await shot(page, "06-two-streaming");
  for (const i of [0, 1]) await waitForAnswers(pane(page, i), 1);
  const list = await page.evaluate(async () => (await fetch("/v1/conversations")).json());
  const answered = await Promise.all(list.data.slice(0, 2).map((c) => page.evaluate(async (id) => (await fetch(`/v1/conversations/${id}`)).json(), c.id)));
  for (const c of answered) {
    assert.equal(c.active_path.length, 2, `${c.title} has a question and an answer`);
  }
  await shot(page, "07-two-answered");

  // The persona switch applies to the active conversation's next answer.
  await page.locator('[data-testid="tab"]').nth(1).click();
  await page.locator('[data-testid="persona"]').selectOption("fun");
  await page.waitForFunction(async () => {
    const list = await (await fetch("/v1/conversations")).json();
    return list.data.some((c) => c.persona === "fun");
  });
  await askIn(pane(page, 1), "Who scored for the Hawks?");
  await waitForAnswers(pane(page, 1), 2);
  assert.match(await pane(page, 1).locator('[data-testid="answer-meta"]').last().textContent(), /fun/);
  assert.match(await pane(page, 0).locator('[data-testid="answer-meta"]').last().textContent(), /regular/);

  // A conversation closed in the page can be reopened from the list the server keeps.
  const title = await page.locator('[data-testid="tab"]').nth(0).locator(".title").textContent();
  await page.locator('[data-testid="tab"]').nth(0).locator(".close").click();
  assert.equal(await page.locator('[data-testid="tab"]').count(), 1);
  await page.locator('[data-testid="history"]').focus();
  const option = page.locator('[data-testid="history"] option', { hasText: title.slice(0, 20) }).first();
  await option.waitFor({ state: "attached" });
  await page.locator('[data-testid="history"]').selectOption(await option.getAttribute("value"));
  await page.locator('[data-testid="tab"]').nth(1).waitFor();
  await pane(page, 1).locator('[data-testid="msg-assistant"]').first().waitFor();
  assert.deepEqual(errors, []);
  await page.close();
});

test("pushed posts appear in the live sidebar, hostile markup stays inert", async () => {
  const { page, errors } = await openPage();
  await page.locator('[data-testid="live-status"]', { hasText: "live" }).waitFor();
  const now = new Date().toISOString();
  await push([{ id: "web:1", author: "riverwatch", text: "Water is now over the Route 9 barriers #rivertonflood", created_at: now }]);
  const item = page.locator('[data-testid="live-post"][data-id="web:1"]');
  await item.waitFor({ timeout: 30_000 });
  assert.match(await item.textContent(), /Route 9 barriers/);

  // The NATS source shows as connected, and a post published to its subject reaches the sidebar.
  const source = page.locator('[data-testid="source"][data-state="connected"]');
  await source.waitFor({ timeout: 30_000 });
  assert.match(await source.textContent(), new RegExp(natsStream));
  const feed = join(dataDir, "nats-post.jsonl");
  writeFileSync(feed, JSON.stringify({ id: "nats:1", author: "gauge_bot", text: "Gauge at Miller Street reads 6.1 m via NATS", created_at: now }) + "\n");
  const published = spawnSync(binary, ["publish", feed, "--stream", natsStream, "--subject", natsSubject], { encoding: "utf8" });
  assert.equal(published.status, 0, published.stderr);
  const viaNats = page.locator('[data-testid="live-post"][data-id="nats:1"]');
  await viaNats.waitFor({ timeout: 30_000 });
  assert.match(await viaNats.textContent(), /via NATS/);
  await page.waitForFunction(() => /\b1 new post from it\b/.test(document.querySelector('[data-testid="source"]')?.textContent || ""));

  const hostile = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><a href="javascript:window.__xss=3">click</a> flood kayak`;
  await push([{ id: "web:2", author: "mallory", text: hostile, created_at: now }]);
  const bad = page.locator('[data-testid="live-post"][data-id="web:2"]');
  await bad.waitFor({ timeout: 30_000 });
  assert.ok((await bad.textContent()).includes("<script>"), "shown as text");
  assert.equal(await bad.locator("img, script, a").count(), 0);

  // The filter narrows the sidebar to matching posts.
  await page.locator('[data-testid="live-filter"]').fill("barriers");
  await page.waitForFunction(() => {
    const items = [...document.querySelectorAll('[data-testid="live-post"]')];
    return items.length > 0 && items.every((li) => li.textContent.includes("barriers"));
  });

  // Hostile markdown in an answer (edited by hand here) is sanitised, and so is the preview.
  const p = pane(page);
  await askIn(p, "What is happening with the flood?");
  await waitForAnswers(p, 1);
  await p.locator('[data-testid="msg-assistant"]').last().locator('[data-testid="edit"]').click();
  const nasty = `Look <img src=x onerror="window.__xss=4"> <script>window.__xss=5</script> [click me](javascript:window.__xss=6) <a href="https://example.org" onclick="window.__xss=7">ok</a>`;
  await p.locator('[data-testid="editor-text"]').fill(nasty);
  assert.equal(await p.locator('[data-testid="editor-preview"] img, [data-testid="editor-preview"] script').count(), 0);
  await p.locator('[data-testid="editor-save"]').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="msg-assistant"] [data-testid="version-label"]')?.textContent === "2 / 2");
  const answer = p.locator('[data-testid="msg-assistant"]').last().locator('[data-testid="answer-text"]');
  assert.equal(await answer.locator("img, script").count(), 0);
  const hrefs = await answer.locator("a").evaluateAll((as) => as.map((a) => [a.getAttribute("href"), a.getAttribute("onclick")]));
  assert.deepEqual(hrefs, [[null, null], ["https://example.org", null]]);
  // The javascript: link lost its href, so clicking it does nothing.
  await answer.locator("a").first().click();
  assert.equal(await page.evaluate(() => window.__xss), undefined, "no injected script ran");
  await shot(page, "08-live-and-inert");
  assert.deepEqual(errors.filter((e) => !/Content Security Policy|ERR_|favicon/.test(e)), []);
  await page.close();
});

test("digests: create, run over the replayed feed, read stories and sources, quiet window", async () => {
  const { page, errors } = await openPage();
  await page.locator('[data-testid="digests-toggle"]').click();
  await page.locator('[data-testid="digests"]').waitFor();
  assert.equal(await page.locator("#panes").isVisible(), false, "conversations are hidden");

  // A bad schedule is refused with the server's message, and nothing is created.
  const form = page.locator('[data-testid="digest-new"]');
  await form.locator("summary").click();
  await page.locator('[data-testid="digest-name"]').fill("Riverton morning");
  await page.locator('[data-testid="digest-cron"]').fill("not a cron");
  await page.locator('[data-testid="digest-create"]').click();
  const error = page.locator('[data-testid="digest-error"]');
  await error.waitFor();
  assert.match(await error.textContent(), /cron/i);
  assert.equal(await page.locator('[data-testid="digest-item"]').count(), 0);

  await page.locator('[data-testid="digest-cron"]').fill("0 8 * * *");
  await page.locator('[data-testid="digest-tz"]').fill("Europe/Berlin");
  await page.locator('[data-testid="digest-create"]').click();
  const item = page.locator('[data-testid="digest-item"]');
  await item.waitFor();
  assert.match(await item.textContent(), /Riverton morning.*cron 0 8 \* \* \* \(Europe\/Berlin\).*last 24h/);
  await page.locator('[data-testid="digest-norun"]').waitFor();

  // Run it as of the feed's time (the header's "as of" field): the flood is a story.
  const run = page.locator('[data-testid="digest-run"]');
  assert.match(await run.textContent(), /Run as of 2024-05-10/);
  await run.click();
  const view = page.locator('[data-testid="digest-run-view"][data-status="succeeded"]');
  await view.waitFor({ timeout: 240_000 });
  const headlines = await page.locator('[data-testid="story-headline"]').allTextContents();
  assert.ok(headlines.length >= 1, "at least one story");
  assert.match(await page.locator('[data-testid="digest-run-meta"]').textContent(), /as of 2024-05-10 18:00 UTC/);
  const flood = page.locator('[data-testid="story"]', { hasText: /flood|riverton|bridge/i }).first();
  await flood.waitFor();
  // Its sources open as post cards; every card is a post of the feed, shown as text.
  await flood.locator('[data-testid="story-sources"]').click();
  const cards = flood.locator('[data-testid="post-card"]');
  assert.ok(await cards.count() >= 1, "the flood story cites posts");
  const cardText = (await cards.allTextContents()).join("\n");
  assert.match(cardText, /flood|Riverton|bridge|water/i);
  assert.doesNotMatch(cardText, /touchdown|football/i, "no off-story post is cited");
  const cite = flood.locator('[data-testid="story-summary"] [data-testid="cite"]');
  if (await cite.count()) {
    // A citation button in the summary toggles its card (all are open now, so it closes one).
    const before = await cards.count();
    await cite.first().click();
    assert.equal(await cards.count(), before - 1);
    await cite.first().click();
    assert.equal(await cards.count(), before);
  }
  await shot(page, "09-digest");

  // A quiet window says so explicitly; the earlier run stays one pick away.
  await page.locator('[data-testid="as-of"]').fill("2020-01-01T00:00:00Z");
  await page.locator('[data-testid="as-of"]').dispatchEvent("change");
  await page.locator('[data-testid="digest-item"]').click();
  await page.locator('[data-testid="digest-run"]', { hasText: "Run as of 2020-01-01" }).click();
  const quiet = page.locator('[data-testid="digest-quiet"]');
  await quiet.waitFor({ timeout: 60_000 });
  assert.equal(await quiet.textContent(), "No notable stories in this window.");
  const runs = page.locator('[data-testid="digest-runs"] option');
  assert.equal(await runs.count(), 2);
  const first = await runs.nth(1).getAttribute("value");
  await page.locator('[data-testid="digest-runs"]').selectOption(first);
  await page.locator('[data-testid="story-headline"]').first().waitFor();
  assert.deepEqual(await page.locator('[data-testid="story-headline"]').allTextContents(), headlines);
  await shot(page, "10-digest-runs");

  // Back to conversations.
  await page.locator('[data-testid="digests-toggle"]').click();
  assert.equal(await page.locator('[data-testid="digests"]').isVisible(), false);
  assert.ok(await pane(page).isVisible());
  // The one 400 is the refused cron expression above.
  assert.deepEqual(errors.filter((e) => !/Content Security Policy|ERR_|favicon|status of 400/.test(e)), []);
  await page.close();
});
