import Synchronization

/// Waits for `task`'s value, or throws `CancellationError` as soon as the waiting task is
/// cancelled. `task` itself is not cancelled: it runs on (e.g. a declaration shared with
/// other callers).
func valueUnlessCancelled<T: Sendable>(_ task: Task<T, any Error>) async throws -> T {
    let slot = ContinuationSlot<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
            slot.put(cont)
            if Task.isCancelled {
                slot.take()?.resume(throwing: CancellationError())
                return
            }
            Task {
                let result = await task.result
                slot.take()?.resume(with: result)
            }
        }
    } onCancel: {
        slot.take()?.resume(throwing: CancellationError())
    }
}

/// A continuation that whoever takes it first (a result or a cancellation) resumes.
private final class ContinuationSlot<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)

    func put(_ c: CheckedContinuation<T, any Error>) { continuation.withLock { $0 = c } }
    func take() -> CheckedContinuation<T, any Error>? { continuation.withLock { $0.take() } }
}
