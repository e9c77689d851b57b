/**
 * Entry point of the load generator child process (forked by load.ts): receives one LoadSpec
 * over IPC, runs it, sends back the report, and disconnects so the process ends by itself.
 */
import { type LoadProgress, type LoadSpec, runLoadHere } from './load-engine.js'

process.once('message', (msg: { spec: LoadSpec; progress?: boolean }) => {
  const onProgress =
    msg.progress === true ? (progress: LoadProgress) => process.send?.({ progress }) : undefined
  runLoadHere(msg.spec, onProgress).then(
    (report) => process.send?.({ report }, () => process.disconnect()),
    (err: unknown) =>
      process.send?.({ error: err instanceof Error ? err.message : String(err) }, () =>
        process.disconnect(),
      ),
  )
})
