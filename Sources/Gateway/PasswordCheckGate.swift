import Synchronization

/// Bounds the password checks running at once (scrypt: 32 MiB and tens of
/// milliseconds of a core each). A check beyond the bound waits its turn in
/// a queue for at most ``maxWait``; one that would wait longer, or find the
/// queue full, is turned away at once, so that a flood makes some requests
/// fail fast (503 with `Retry-After`) instead of making every request slow.
public final class PasswordCheckGate: Sendable {
    /// Checks running at once.
    public let maxConcurrent: Int
    /// Checks waiting at once; beyond, a check is turned away without waiting.
    public let maxWaiting: Int
    /// The longest a check waits for its turn.
    public let maxWait: Duration

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var running = 0
        var waiting: [Waiter] = []
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    /// A gate letting `maxConcurrent` checks run, and `maxWaiting` wait up to `maxWait` each.
    public init(maxConcurrent: Int, maxWaiting: Int, maxWait: Duration) {
        self.maxConcurrent = max(1, maxConcurrent)
        self.maxWaiting = max(0, maxWaiting)
        self.maxWait = maxWait
    }

    /// Checks running now, and waiting now.
    public var load: (running: Int, waiting: Int) { state.withLock { ($0.running, $0.waiting.count) } }

    /// Runs `check` when its turn comes; `nil` when it was turned away (the
    /// queue full, or its wait over) and did not run.
    public func run<T: Sendable>(_ check: @Sendable () async throws -> T) async rethrows -> T? {
        guard await enter() else { return nil }
        defer { leave() }
        return try await check()
    }

    private enum Admission {
        case now
        case queued(UInt64)
        case refused
    }

    private func enter() async -> Bool {
        // A waiter whose request is cancelled (its client gone) leaves the queue at once.
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await admit(id)
        } onCancel: {
            expire(id)
        }
    }

    private func admit(_ id: UInt64) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let admission = state.withLock { state -> Admission in
                if state.running < maxConcurrent {
                    state.running += 1
                    return .now
                }
                guard state.waiting.count < maxWaiting, !Task.isCancelled else { return .refused }
                state.waiting.append(Waiter(id: id, continuation: continuation))
                return .queued(id)
            }
            switch admission {
            case .now: continuation.resume(returning: true)
            case .refused: continuation.resume(returning: false)
            case .queued(let id):
                let wait = maxWait
                Task { [weak self] in
                    try? await Task.sleep(for: wait)
                    self?.expire(id)
                }
            }
        }
    }

    /// Turns a waiter away when its wait is over or its request is cancelled, if it is still waiting.
    private func expire(_ id: UInt64) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiting.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiting.remove(at: index)
        }
        waiter?.continuation.resume(returning: false)
    }

    /// Hands the finished check's place to the first waiter, or frees it.
    private func leave() {
        let next = state.withLock { state -> Waiter? in
            if state.waiting.isEmpty {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.continuation.resume(returning: true)
    }
}
