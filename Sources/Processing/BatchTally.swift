import Consuming

/// Tallies of one batch, counted once its transaction has committed.
struct BatchTally {
    var applied = 0
    var rejected = 0
    var deadLettered = 0
    /// Of the dead-lettered, those refused for their signature, by code.
    var signatureRefusals: [SignatureRefusal: Int] = [:]

    func record(topic: String) {
        if applied > 0 { ConsumerMetrics.messages(topic: topic, outcome: "applied").increment(by: applied) }
        if rejected > 0 { ConsumerMetrics.messages(topic: topic, outcome: "rejected").increment(by: rejected) }
        if deadLettered > 0 {
            ConsumerMetrics.messages(topic: topic, outcome: "dead_lettered").increment(by: deadLettered)
        }
        for (refusal, count) in signatureRefusals {
            ConsumerMetrics.signatureRefusals(topic: topic, code: refusal.code).increment(by: count)
        }
    }
}
