import net from 'node:net'

/**
 * A TCP proxy on loopback between a service and PostgreSQL or Redis. `cut()` drops every connection and refuses new
 * ones, the way a network partition or a dead server looks to the service; `restore()` lets traffic through again.
 * Tests use it to show real behaviour under faults without mocking the client libraries.
 */
export class TcpProxy {
  private server: net.Server | undefined
  private readonly sockets = new Set<net.Socket>()
  private open = true
  port = 0

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  static forUrl(url: string): TcpProxy {
    const parsed = new URL(url)
    return new TcpProxy(parsed.hostname, Number(parsed.port || (parsed.protocol.startsWith('redis') ? 6379 : 5432)))
  }

  /** `url` with its host and port replaced by the proxy's. */
  rewrite(url: string): string {
    const parsed = new URL(url)
    parsed.hostname = '127.0.0.1'
    parsed.port = String(this.port)
    return parsed.toString()
  }

  async start(): Promise<this> {
    this.server = net.createServer((client) => {
      if (!this.open) {
        client.destroy()
        return
      }
      const upstream = net.connect(this.targetPort, this.targetHost)
      for (const socket of [client, upstream]) {
        this.sockets.add(socket)
        socket.on('close', () => this.sockets.delete(socket))
        socket.on('error', () => {
          client.destroy()
          upstream.destroy()
        })
      }
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as net.AddressInfo).port
    return this
  }

  cut(): void {
    this.open = false
    for (const socket of this.sockets) socket.destroy()
  }

  restore(): void {
    this.open = true
  }

  async stop(): Promise<void> {
    this.cut()
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve())
  }
}
