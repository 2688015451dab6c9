// Unit tests of the pod status a container group implies; test/k8s/kubernetes.test.ts runs the same code against a real API server and berth.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { podStatusFromGroup } from './pod-status.js';

// What a group always has and these tests do not look at.
const osType = 'Linux' as const;
const resources = { requests: { cpu: 1, memoryInGB: 1 } };
const pod = (spec: any) => ({ metadata: { name: 'p', namespace: 'ns', uid: 'u1', labels: { app: 'x' } }, spec });

describe('pod status from a group', () => {
  it('turns the instance view into phase, conditions and container statuses', () => {
    const p = pod({ containers: [{ name: 'c', image: 'i' }] });
    const g = (state: string, cur: any, restartCount = 0) => ({
      id: '', name: 'ns-p', tags: {},
      properties: { osType, ipAddress: { type: 'Private' as const, ports: [], ip: '10.1.0.5' }, instanceView: { state }, containers: [{ name: 'c', properties: { image: 'i', resources, instanceView: { restartCount, currentState: cur } } }] },
    });
    const running = podStatusFromGroup(p, g('Running', { state: 'Running', startTime: '2026-01-01T00:00:00Z' }), { nodeIP: '10.0.0.1' });
    assert.equal(running.phase, 'Running');
    assert.equal(running.podIP, '10.1.0.5');
    assert.ok(running.conditions.every((c: any) => c.status === 'True'));
    assert.deepEqual(running.containerStatuses[0].state, { running: { startedAt: '2026-01-01T00:00:00Z' } });
    // Unchanged input, previous status given: identical output (no needless writes).
    assert.deepEqual(podStatusFromGroup(p, g('Running', { state: 'Running', startTime: '2026-01-01T00:00:00Z' }), { nodeIP: '10.0.0.1' }, running), running);
    const waiting = podStatusFromGroup(p, g('Running', { state: 'Waiting', detailStatus: 'CrashLoopBackOff' }, 2), { nodeIP: '10.0.0.1' });
    assert.equal(waiting.containerStatuses[0].restartCount, 2);
    assert.equal(waiting.containerStatuses[0].state.waiting.reason, 'CrashLoopBackOff');
    assert.ok(waiting.conditions.some((c: any) => c.type === 'Ready' && c.status === 'False'));
    const done = podStatusFromGroup(p, g('Succeeded', { state: 'Terminated', exitCode: 0 }), { nodeIP: '10.0.0.1' });
    assert.equal(done.phase, 'Succeeded');
    // List results have no group instance view: the phase follows from the containers and the restart policy.
    const listed = { ...g('', { state: 'Terminated', exitCode: 1 }), properties: { ...g('', { state: 'Terminated', exitCode: 1 }).properties, instanceView: undefined } } as any;
    assert.equal(podStatusFromGroup({ ...p, spec: { ...p.spec, restartPolicy: 'Never' } }, listed, { nodeIP: '10.0.0.1' }).phase, 'Failed');
    assert.equal(podStatusFromGroup(p, listed, { nodeIP: '10.0.0.1' }).phase, 'Running'); // Always: it is restarted
    assert.equal(done.containerStatuses[0].state.terminated.reason, 'Completed');
  });

  it('derives Ready from berth readiness (detailStatus) and Initialized from the init containers', () => {
    const p = { metadata: { name: 'p', namespace: 'ns' }, spec: { containers: [{ name: 'c', image: 'i' }], initContainers: [{ name: 'setup', image: 'i' }] } };
    const g = (cur: any, init: any) => ({
      id: '', name: 'ns-p', tags: {},
      properties: {
        osType, ipAddress: { type: 'Private' as const, ports: [], ip: '10.1.0.5' }, instanceView: { state: 'Running' },
        containers: [{ name: 'c', properties: { image: 'i', resources, instanceView: { restartCount: 0, currentState: cur } } }],
        initContainers: [{ name: 'setup', properties: { image: 'i', instanceView: { restartCount: 0, currentState: init } } }],
      },
    });
    const condition = (st: any, type: string) => st.conditions.find((c: any) => c.type === type).status;
    const initDone = { state: 'Terminated', exitCode: 0, detailStatus: 'Completed' };
    const notReady = podStatusFromGroup(p, g({ state: 'Running', startTime: 't', detailStatus: 'NotReady' }, initDone), { nodeIP: '10.0.0.1' });
    assert.equal(notReady.containerStatuses[0].ready, false);
    assert.equal(notReady.containerStatuses[0].started, true);
    assert.equal(condition(notReady, 'Ready'), 'False');
    assert.equal(condition(notReady, 'Initialized'), 'True');
    assert.equal(notReady.initContainerStatuses[0].state.terminated.reason, 'Completed');
    const ready = podStatusFromGroup(p, g({ state: 'Running', startTime: 't', detailStatus: 'Ready' }, initDone), { nodeIP: '10.0.0.1' });
    assert.equal(condition(ready, 'Ready'), 'True');
    const initializing = podStatusFromGroup(p, g({ state: 'Waiting', detailStatus: 'Waiting' }, { state: 'Running', startTime: 't' }), { nodeIP: '10.0.0.1' });
    assert.equal(condition(initializing, 'Initialized'), 'False');
    assert.equal(initializing.containerStatuses[0].state.waiting.reason, 'PodInitializing');
    assert.deepEqual(initializing.initContainerStatuses[0].state, { running: { startedAt: 't' } });
  });
});
