/** A hand-driven clock for the `now` option of the pipeline's time-keeping parts. */
export interface ManualClock {
  now: () => number
  advance: (ms: number) => void
}

/** Starts at `start` ms (a wall-clock-like epoch, so no timestamp is ever 0) and moves only on `advance`. */
export function clock(start = 1_700_000_000_000): ManualClock {
  let t = start
  return {
    now: () => t,
    advance: (ms) => {
      t += ms
    },
  }
}
