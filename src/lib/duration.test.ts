// ISO 8601 durations: what ARM bodies carry (pauseTimeBetweenBatches, stabilisation windows, metric intervals).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDuration, parseDuration } from './duration.js';

test('durations of days, hours, minutes and seconds parse to milliseconds', () => {
  assert.equal(parseDuration('PT1M'), 60_000);
  assert.equal(parseDuration('PT30S'), 30_000);
  assert.equal(parseDuration('pt1.5s'), 1500);
  assert.equal(parseDuration('P1DT2H3M4S'), ((24 + 2) * 60 + 3) * 60_000 + 4000);
  assert.equal(parseDuration('PT0S'), 0);
  assert.equal(parseDuration('P2D'), 2 * 86_400_000);
});

test('what is not such a duration is refused', () => {
  for (const bad of ['', 'P', 'PT', '1M', 'PT-1S', 'P1Y', 'PT1M1H', 'T1S', 'PT1S junk']) assert.equal(parseDuration(bad), undefined, bad);
});

test('milliseconds are written back as the shortest duration of whole seconds', () => {
  assert.equal(formatDuration(60_000), 'PT1M');
  assert.equal(formatDuration(0), 'PT0S');
  assert.equal(formatDuration(90_500), 'PT1M31S');
  assert.equal(formatDuration(86_400_000 + 1000), 'P1DT1S');
  for (const ms of [1000, 61_000, 3_600_000, 5 * 60_000]) assert.equal(parseDuration(formatDuration(ms)), ms);
});
