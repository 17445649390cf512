// libFuzzer entry over everything a server or client does with untrusted bytes (see
// RPCWireDecoding). Built by bench/fuzz.sh together with the RPCWire sources, so a
// crash, a trap or a broken invariant below is a finding.

@_cdecl("LLVMFuzzerTestOneInput")
public func rpcWireFuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes: [UInt8] = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let out = RPCWireDecoding.exercise(bytes)
    // The envelope walk answers exactly as the tree path does: the same value or the same error.
    let json = OsloEnvelope.contentType
    precondition(out.request == Result { () throws(WireError) in try RPCRequest.decodeTree(body: bytes, contentType: json) })
    precondition(out.reply == Result { () throws(WireError) in try RPCReply.decodeTree(body: bytes, contentType: json) })
    if case .success(let request) = out.request {
        precondition(RPCWireDecoding.roundTrips(request), "a decoded request does not survive re-encoding")
        precondition(request.encodeBody() == OsloEnvelope.wrap(request.innerMessage()), "direct writer differs from the tree's")
        if let q = request.replyQueue { precondition(RPCReplyAddress.isValidReplyQueue(q)) }
        if let m = request.msgID { precondition(RPCReplyAddress.isValidMsgID(m)) }
        if let t = request.monitorTimeout { precondition(t.isFinite && t >= 0 && t <= RPCRequest.maxMonitorTimeout) }
    }
    if case .success(let reply) = out.reply {
        // What a client decodes, a server could have sent: it must encode and decode again.
        precondition((try? RPCReply.decode(body: reply.encodeBody(), contentType: OsloEnvelope.contentType)) != nil)
        precondition(reply.encodeBody() == OsloEnvelope.wrap(reply.innerMessage()), "direct writer differs from the tree's")
    }
    if let a = out.address {
        precondition(RPCReplyAddress.isValidReplyQueue(a.replyQueue) && RPCReplyAddress.isValidMsgID(a.msgID))
    }
    if let m = out.replyMsgID { precondition(RPCReplyAddress.isValidMsgID(m)) }
    // A reply as our servers write it can always be attributed: `_msg_id` comes first, so the
    // scan a client makes of an unusable reply finds that one, not one nested in the result.
    if case .success(let reply) = out.reply, RPCReplyAddress.isValidMsgID(reply.msgID) {
        precondition(RPCReplyAddress.scanMsgID(reply.encodeBody()) == reply.msgID, "our reply's _msg_id is not found first")
    }
    return 0
}
