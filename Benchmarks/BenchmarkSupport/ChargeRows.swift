import Billing
import Contract
import Foundation
import Logging
import PostgresNIO

/// Writes with `COPY` the rows the charge path writes for `requests`: each
/// charge, its merchant-result message in the outbox and, when
/// `authorizations` is given, the used authorization. Returns the seconds the
/// COPY took; the rows are rendered (JSON, hex) before the clock starts.
///
/// This is the database's own limit for the charge path: no locks, no reads,
/// no rules, no transactions per batch.
public func copyChargeRows(
    _ requests: [ChargeRequest], authorizations: [String]? = nil, client: PostgresClient, logger: Logger
) async throws -> Double {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var charges = ByteBuffer()
    var outbox = ByteBuffer()
    var used = ByteBuffer()
    let hexDigits = Array("0123456789abcdef".utf8)
    for (index, request) in requests.enumerated() {
        charges.writeString(
            "\(request.lineID)\t\(request.merchantID)\t\(request.chargeID)\t\(request.amount.amount)\t\(request.description)\t2026-11\tactive\n"
        )
        let id = MerchantResultMessage.id(topic: "matomete.charges", partition: 0, offset: Int64(index))
        let result = MerchantResultMessage(
            id: id, request: .charge(request), outcome: .accepted(BillingCycle("2026-11")!))
        outbox.writeString("matomete.merchant.\(request.merchantID).results\t\(request.lineID)\t\(id)\t\\\\x")
        for byte in try encoder.encode(result) {
            outbox.writeInteger(hexDigits[Int(byte >> 4)])
            outbox.writeInteger(hexDigits[Int(byte & 0x0f)])
        }
        outbox.writeString("\n")
        if let authorizations {
            used.writeString(
                "\(request.lineID)\t\(authorizations[index])\t\(request.merchantID)\tcharge\t\(request.chargeID)\tt\t2030-01-01 00:00:00+00\n"
            )
        }
    }
    let clock = ContinuousClock()
    let start = clock.now
    try await client.withConnection { connection in
        try await connection.copyFrom(
            table: "charges",
            columns: ["line_id", "merchant_id", "charge_id", "amount_yen", "description", "cycle", "status"],
            logger: logger
        ) { writer in try await writeChunks(charges, to: writer) }
        try await connection.copyFrom(
            table: "outbox", columns: ["topic", "message_key", "message_id", "payload"], logger: logger
        ) { writer in try await writeChunks(outbox, to: writer) }
        if authorizations != nil {
            try await connection.copyFrom(
                table: "used_authorizations",
                columns: ["line_id", "token_id", "merchant_id", "request_kind", "reference", "accepted", "expires_at"],
                logger: logger
            ) { writer in try await writeChunks(used, to: writer) }
        }
    }
    return (clock.now - start).seconds
}

/// Streams `buffer` to a COPY in 1 MiB pieces.
private func writeChunks(_ buffer: ByteBuffer, to writer: PostgresCopyFromWriter) async throws {
    var rest = buffer
    while rest.readableBytes > 0, let piece = rest.readSlice(length: min(rest.readableBytes, 1 << 20)) {
        try await writer.write(piece)
    }
}
