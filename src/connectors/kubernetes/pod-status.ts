// A pod's status as berth's container group implies it: phase, conditions and container statuses from the instance view.
import type { ContainerGroup, ContainerInstanceView, ContainerState } from '../../client/index.js';

const cond = (type: string, ok: boolean, at: string, reason?: string) => ({
  type, status: ok ? 'True' : 'False', lastProbeTime: null, lastTransitionTime: at, ...(reason && !ok && { reason }),
});

function containerState(s: ContainerState | undefined, fallbackReason: string): any {
  switch (s?.state) {
    case 'Running':
      return { running: { startedAt: s.startTime } };
    case 'Terminated':
      return {
        terminated: {
          exitCode: s.exitCode ?? 0,
          reason: s.detailStatus || (s.exitCode === 0 ? 'Completed' : 'Error'),
          ...(s.startTime && { startedAt: s.startTime }),
          ...(s.finishTime && { finishedAt: s.finishTime }),
        },
      };
    default:
      // berth's 'Waiting' says nothing Kubernetes' reasons would not say better.
      return { waiting: { reason: s?.detailStatus && s.detailStatus !== 'Waiting' ? s.detailStatus : fallbackReason } };
  }
}

/**
 * The pod status berth's instance view implies. `prev` keeps transition times stable so a
 * status that did not change produces an identical object (and no API write).
 */
export function podStatusFromGroup(pod: any, g: ContainerGroup | undefined, o: { nodeIP: string; createdAt?: string }, prev?: any): any {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const gstate = g?.properties.instanceView?.state ?? 'Pending';
  const views = new Map((g?.properties.containers ?? []).map((c) => [c.name, c.properties]));
  const initViews = new Map((g?.properties.initContainers ?? []).map((c) => [c.name, c.properties]));
  const inits = pod.spec.initContainers ?? [];
  const failedReason = g?.properties.provisioningState === 'Failed' ? 'CreateContainerError' : undefined;
  const status = (c: any, v: ContainerInstanceView | undefined, waitingReason: string, init: boolean) => {
    const cur = v?.currentState;
    // berth shows readiness in detailStatus ('NotReady' while a readiness probe fails).
    const running = cur?.state === 'Running';
    return {
      name: c.name,
      image: c.image,
      imageID: '',
      containerID: g ? `berth://${g.name}/${c.name}` : undefined,
      ready: init ? cur?.state === 'Terminated' && cur.exitCode === 0 : running && cur?.detailStatus !== 'NotReady',
      started: running,
      restartCount: v?.restartCount ?? 0,
      state: containerState(cur, waitingReason),
      lastState: v?.previousState?.state ? containerState(v.previousState, '') : {},
    };
  };
  // an init container is ready once it exited 0; the pod is Initialized once all are, as the kubelet reports it
  const initContainerStatuses = inits.map((c: any) => status(c, initViews.get(c.name)?.instanceView, failedReason ?? 'PodInitializing', true));
  const initialized = !!g && initContainerStatuses.every((s: { ready: boolean }) => s.ready);
  const containerStatuses = pod.spec.containers.map((c: any) =>
    status(c, views.get(c.name)?.instanceView, failedReason ?? (inits.length > 0 && !initialized ? 'PodInitializing' : 'ContainerCreating'), false));
  const allRunning = containerStatuses.length > 0 && containerStatuses.every((c: any) => c.ready);
  // List results carry no group instance view (as in ACI): then the end state follows from the containers and the policy.
  const policy = pod.spec.restartPolicy ?? 'Always';
  const allDone = containerStatuses.length > 0 && containerStatuses.every((c: any) => c.state.terminated);
  const allZero = allDone && containerStatuses.every((c: any) => c.state.terminated.exitCode === 0);
  let phase = 'Pending';
  if (gstate === 'Succeeded' || (policy !== 'Always' && allZero)) phase = 'Succeeded';
  else if (gstate === 'Failed' || (policy === 'Never' && allDone && !allZero)) phase = 'Failed';
  else if (gstate === 'Running' || containerStatuses.some((c: any) => c.state.running || c.state.terminated || c.restartCount > 0)) phase = 'Running';
  const ready = phase === 'Running' && allRunning;
  const keep = (type: string, status: boolean) => {
    const p = prev?.conditions?.find((c: any) => c.type === type);
    return p && p.status === (status ? 'True' : 'False') ? p.lastTransitionTime : now;
  };
  const ip = g?.properties.ipAddress?.ip;
  const started = prev?.startTime ?? o.createdAt ?? now;
  const conditions = [
    cond('PodReadyToStartContainers', !!ip, keep('PodReadyToStartContainers', !!ip)),
    cond('Initialized', initialized, keep('Initialized', initialized), 'ContainersNotInitialized'),
    cond('Ready', ready, keep('Ready', ready), 'ContainersNotReady'),
    cond('ContainersReady', ready, keep('ContainersReady', ready), 'ContainersNotReady'),
    cond('PodScheduled', true, keep('PodScheduled', true)),
  ];
  return {
    phase,
    conditions,
    hostIP: o.nodeIP,
    hostIPs: [{ ip: o.nodeIP }],
    ...(ip && { podIP: ip, podIPs: [{ ip }] }),
    startTime: started,
    ...(inits.length > 0 && { initContainerStatuses }),
    containerStatuses,
  };
}

/** Status for a pod berth refused: failed, with the reason where `kubectl describe` shows it. */
export function refusedStatus(pod: any, nodeIP: string, message: string): any {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  return {
    phase: 'Failed',
    reason: 'ProviderFailed',
    message,
    hostIP: nodeIP,
    hostIPs: [{ ip: nodeIP }],
    startTime: pod.status?.startTime ?? now,
    conditions: [cond('PodScheduled', true, now), cond('Ready', false, now, 'ProviderFailed')],
    containerStatuses: pod.spec.containers.map((c: any) => ({
      name: c.name, image: c.image, imageID: '', ready: false, started: false, restartCount: 0,
      state: { waiting: { reason: 'ProviderFailed', message } }, lastState: {},
    })),
  };
}
