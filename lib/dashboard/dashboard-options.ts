import type { Server } from 'node:http'

/** Options of `bus.dashboard(options)`. */
export interface DashboardOptions {
  /**
   * An http(s) server to mount the dashboard on, under `path`: requests outside `path` still go to the
   * server's other request listeners. Without it, use the returned handler yourself.
   */
  server?: Server
  /**
   * Where the dashboard lives on `server` (or the prefix the handler strips from `req.url`).
   * @default '/'
   */
  path?: string
  /**
   * Turns the admin actions on (moving dead letters back, deleting a queue): a request must carry it in
   * the `x-busmq-admin-token` header. Without it the dashboard is read-only.
   */
  adminToken?: string
  /**
   * ms between two refreshes of an open page (Server-Sent Events).
   * @default 1000
   */
  interval?: number
  /**
   * Rows of a section per page.
   * @default 100
   */
  limit?: number
}

export const DEFAULT_DASHBOARD_OPTIONS = {
  path: '/',
  interval: 1000,
  limit: 100
} as const

/** Header that carries the admin token. */
export const ADMIN_TOKEN_HEADER = 'x-busmq-admin-token'
