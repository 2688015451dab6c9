// `berth container exec|attach`: a command's terminal or a container's output, through the client's WebSocket sessions.
import type { Command } from 'commander';
import { connect, withGroup } from './command.js';

export function registerStreamCommands(container: Command) {
  withGroup(container.command('exec').description('Run a command in a running container (with a terminal when this one is a terminal)'))
    .requiredOption('--exec-command <command>', "command to run, split as a shell would (quotes, backslashes; nothing expanded: use sh -c '…')")
    .option('--container-name <name>', 'container (default: the group name)')
    .action(async (o) => {
      // As docker exec -it: a terminal in the container only when both ends here are one.
      const tty = process.stdin.isTTY && process.stdout.isTTY;
      const size = () => ({ rows: process.stdout.rows ?? 24, cols: process.stdout.columns ?? 80 });
      const session = await connect().containers.openExec(o.resourceGroup, o.name, o.containerName ?? o.name, {
        command: o.execCommand, ...(tty && { terminalSize: size() }), onOutput: (d) => process.stdout.write(d),
      });
      const onResize = () => session.resize(size());
      if (tty) {
        process.stdin.setRawMode(true);
        process.stdout.on('resize', onResize);
      }
      process.stdin.on('data', (d) => session.write(d));
      process.stdin.on('end', () => session.endInput());
      try {
        // The command's exit code is this one's, as with docker exec and kubectl exec.
        process.exitCode = (await session.ended).exitCode ?? 0;
      } finally {
        if (tty) {
          process.stdin.setRawMode(false);
          process.stdout.off('resize', onResize);
        }
        process.stdin.destroy();
      }
    });

  withGroup(container.command('attach').description("Stream a container's output as it is written, until it ends"))
    .option('--container-name <name>', 'container (default: the group name)')
    .action(async (o) => {
      const session = await connect().containers.openAttach(o.resourceGroup, o.name, o.containerName ?? o.name, { onOutput: (d) => process.stdout.write(d) });
      await session.ended;
    });
}
