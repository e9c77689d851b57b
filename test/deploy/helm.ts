/**
 * The chart rendered for real without a helm binary: `tools/helm-render` (Helm's engine
 * semantics, built offline from Debian's Go packages by scripts/build-helm-render.sh), and every
 * rendered object validated against the Kubernetes schemas of the npm package
 * `kubernetes-models`, made strict like `kubeconform -strict` (a field the schema does not know
 * is an error), plus the few checks the API server makes that no schema states.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The chart under test; HELM_CHART_UNDER_TEST points the chart tests at a (sabotaged) copy. */
export const CHART =
  process.env.HELM_CHART_UNDER_TEST ??
  fileURLToPath(new URL('../../helm/saslgate/', import.meta.url))
const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export type Obj = Record<string, unknown>
export const isObj = (v: unknown): v is Obj =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

export interface Manifest {
  /** The template it came from, e.g. `saslgate/templates/deployment.yaml`. */
  source: string
  content: string
  object: Obj
}

export interface Rendered {
  /** The values the templates saw (chart values, -f files, --set; coalesced like Helm). */
  values: Obj
  manifests: Manifest[]
  notes: string
}

export interface RenderOptions {
  release?: string
  namespace?: string
  valueFiles?: string[]
  set?: string[]
  kubeVersion?: string
}

let binary: string | undefined

/** Builds (or finds cached) the renderer; fails with the reason when Go is missing. */
export function renderer(): string {
  binary ??= execFileSync('bash', [`${ROOT}scripts/build-helm-render.sh`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 180_000,
  }).trim()
  return binary
}

/** The error `helm template` would print, with the renderer's exit status. */
export class RenderError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message)
  }
}

export function render(chart: string, o: RenderOptions = {}): Rendered {
  const args = ['--json', '--name', o.release ?? 'saslgate', '--namespace', o.namespace ?? 'mail']
  for (const f of o.valueFiles ?? []) args.push('-f', f)
  for (const s of o.set ?? []) args.push('--set', s)
  if (o.kubeVersion !== undefined) args.push('--kube-version', o.kubeVersion)
  args.push(chart)
  const r = spawnSync(renderer(), args, { encoding: 'utf8', timeout: 30_000 })
  if (r.status !== 0) throw new RenderError(r.stderr.trim() || String(r.error), r.status)
  return JSON.parse(r.stdout) as Rendered
}

/** Every object of a kind, with the name it was rendered under. */
export function objectsOf(r: Rendered, kind: string): Obj[] {
  return r.manifests.map((m) => m.object).filter((o) => o.kind === kind)
}

export function one(r: Rendered, kind: string, name: string): Obj {
  const found = objectsOf(r, kind).filter((o) => (o.metadata as Obj).name === name)
  if (found.length !== 1) throw new Error(`${found.length} ${kind} named ${name}`)
  return found[0]!
}

/** `a.b.c` into nested objects (and `0` into arrays); undefined when absent. */
export function at(v: unknown, path: string): unknown {
  let node = v
  for (const key of path.split('.')) {
    if (Array.isArray(node)) node = node[Number(key)]
    else if (isObj(node)) node = node[key]
    else return undefined
  }
  return node
}

/**
 * Custom resources the chart may render, whose schemas kubernetes-models does not ship: each
 * gets the structural check the CRD's schema would make for the fields the chart sets.
 */
const CRDS: Record<string, (o: Obj) => string[]> = {
  'monitoring.coreos.com/v1 ServiceMonitor': (o) => {
    const errors: string[] = []
    const labels = at(o, 'spec.selector.matchLabels')
    if (!isObj(labels) || Object.keys(labels).length === 0)
      errors.push('spec.selector.matchLabels is empty')
    const endpoints = at(o, 'spec.endpoints')
    if (!Array.isArray(endpoints) || endpoints.length === 0) errors.push('spec.endpoints is empty')
    for (const key of Object.keys(o))
      if (!['apiVersion', 'kind', 'metadata', 'spec'].includes(key)) errors.push(`unknown ${key}`)
    return errors
  },
}

/**
 * A copy of `v` whose objects record which of their keys were read: kubernetes-models'
 * validators read every property their schema declares (and iterate maps), so a key never
 * read is a field the schema does not know, what `kubeconform -strict` refuses.
 */
function tracked(v: unknown, path: string, read: Set<string>, all: string[]): unknown {
  if (Array.isArray(v)) return v.map((x, i) => tracked(x, `${path}/${i}`, read, all))
  if (!isObj(v)) return v
  const target: Obj = {}
  for (const [k, x] of Object.entries(v)) {
    all.push(`${path}/${k}`)
    target[k] = tracked(x, `${path}/${k}`, read, all)
  }
  return new Proxy(target, {
    get(t, key, receiver) {
      if (typeof key === 'string' && Object.hasOwn(t, key)) read.add(`${path}/${key}`)
      return Reflect.get(t, key, receiver)
    },
  })
}

type Model = { prototype: { validate(this: unknown): void } }

async function modelFor(apiVersion: string, kind: string): Promise<Model | undefined> {
  // Core v1 lives at kubernetes-models/v1, a group at kubernetes-models/<group>/<version>.
  if (!/^([a-z0-9.-]+\/)?v\d+(alpha\d+|beta\d+)?$/.test(apiVersion)) return undefined
  try {
    const mod = (await import(`kubernetes-models/${apiVersion}`)) as Record<string, unknown>
    return mod[kind] as Model | undefined
  } catch {
    return undefined
  }
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/
/** Kinds whose names the API server checks as DNS-1035 labels (they become DNS names). */
const LABEL_NAMED = new Set(['Service'])

/** What the API server would refuse in one object: schema, unknown fields, names, selectors. */
export async function validateObject(o: Obj): Promise<string[]> {
  const apiVersion = String(o.apiVersion)
  const kind = String(o.kind)
  const errors: string[] = []
  const name = at(o, 'metadata.name')
  if (typeof name !== 'string' || name.length > 253 || !DNS_SUBDOMAIN.test(name))
    errors.push(`metadata.name ${JSON.stringify(name)} is not a DNS subdomain`)
  else if (LABEL_NAMED.has(kind) && (name.length > 63 || !DNS_LABEL.test(name)))
    errors.push(`metadata.name ${name} is not a DNS-1035 label`)
  for (const where of ['metadata.labels', 'spec.template.metadata.labels']) {
    const labels = at(o, where)
    if (!isObj(labels)) continue
    for (const [k, v] of Object.entries(labels))
      if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v))
        errors.push(`${where}.${k}: ${JSON.stringify(v)} is not a label value`)
  }

  const crd = CRDS[`${apiVersion} ${kind}`]
  if (crd !== undefined) return [...errors, ...crd(o)]
  const model = await modelFor(apiVersion, kind)
  if (model === undefined) return [...errors, `no schema for ${apiVersion} ${kind}`]
  const read = new Set<string>()
  const all: string[] = []
  const data = tracked(o, '', read, all)
  try {
    model.prototype.validate.call(data)
  } catch (err) {
    errors.push((err as Error).message)
  }
  for (const path of all) if (!read.has(path)) errors.push(`unknown field ${path}`)

  // The API server refuses a workload whose selector is empty or misses its pods' labels.
  if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet'].includes(kind)) {
    const selector = at(o, 'spec.selector.matchLabels')
    const labels = at(o, 'spec.template.metadata.labels')
    if (!isObj(selector) || Object.keys(selector).length === 0)
      errors.push('spec.selector.matchLabels is empty')
    else if (!Object.entries(selector).every(([k, v]) => isObj(labels) && labels[k] === v))
      errors.push('spec.selector does not match spec.template.metadata.labels')
  }
  return errors
}

/** Every object's errors, `Kind/name (source): error`, plus duplicate kind/name pairs. */
export async function validateAll(r: Rendered): Promise<string[]> {
  const errors: string[] = []
  const seen = new Set<string>()
  for (const m of r.manifests) {
    const id = `${m.object.kind}/${at(m.object, 'metadata.name')}`
    if (seen.has(id)) errors.push(`${id}: rendered twice`)
    seen.add(id)
    for (const e of await validateObject(m.object)) errors.push(`${id} (${m.source}): ${e}`)
  }
  return errors
}
