/// The support desk's page templates (inside the shared layout). Every value is escaped.
enum DeskTemplates {
    /// One action's form: its hidden fields, a reason, and the button.
    static func action(_ name: String, hidden: [String] = [], extra: String = "") -> String {
        """
        <form class="action" method="post" action="{{linePath}}/actions">\
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="action" value="\(name)">\
        \(hidden.map { "<input type=\"hidden\" name=\"\($0)\" value=\"{{\($0)}}\">" }.joined())\(extra)\
        <input class="reason" name="reason" required maxlength="500" placeholder="{{t.reason}}" aria-label="{{t.reason}}">\
        <button class="\(name)">{{t.action_\(name)}}</button></form>
        """
    }

    static let all: [String: String] = [
        "lines": """
        <h1>{{t.lines_title}}</h1>
        <p class="muted">{{t.lines_explained}}</p>
        <form class="search" id="find" method="get" action="/lines">
        <label>{{t.find_by}}<select id="find-by" name="by">{{#kinds}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/kinds}}</select></label>
        <label>{{t.value}}<input id="find-value" name="value" value="{{value}}" maxlength="128" required></label>
        <label>{{t.merchant}}<input id="find-merchant" name="merchant" value="{{merchant}}" maxlength="64"></label>
        <button id="find-submit">{{t.find}}</button>
        </form>
        {{#notFound}}<p class="notice" id="not-found">{{t.not_found_line}}</p>{{/notFound}}
        <form method="post" action="/logout-everywhere" class="no-print"><input type="hidden" name="csrf" value="{{csrf}}"><p><button id="logout-everywhere">{{t.logout_everywhere}}</button></p></form>
        """,
        "line": """
        <h1>{{t.line_title}} <span id="line-id">{{line.lineID}}</span></h1>
        {{#done}}<p class="notice" id="done">{{done}}</p>{{/done}}
        <table id="line">
        <tr><th>{{t.type}}</th><td>{{line.type}}{{#line.fletsNet}} + {{t.flets_net}}{{/line.fletsNet}}</td></tr>
        <tr><th>{{t.eligible}}</th><td>{{#line.eligible}}{{t.yes}}{{/line.eligible}}{{^line.eligible}}<span class="refused">{{t.no}}</span>{{/line.eligible}}</td></tr>
        <tr><th>{{t.status}}</th><td id="line-status">{{status}}</td></tr>
        <tr><th>{{t.billing}}</th><td id="billing">{{#blockedSince}}<span class="refused">{{t.billing_blocked_since}} {{blockedSince}}</span>{{/blockedSince}}{{^blockedSince}}{{t.billing_allowed}}{{/blockedSince}}</td></tr>
        <tr><th>{{t.limit}}</th><td id="limit">{{limit}}{{#userLimit}} ({{t.user_limit}}: {{userLimit}}){{/userLimit}}{{#lineLimit}} ({{t.line_limit}}: {{lineLimit}}){{/lineLimit}}</td></tr>
        <tr><th>{{t.this_month}}</th><td>{{line.openCycle}}: {{spent}} {{t.spent}}</td></tr>
        <tr><th>{{t.line_lock}}</th><td id="line-lock">{{#lineLockedUntil}}<span class="refused">{{t.locked_until}} {{lineLockedUntil}}</span>{{/lineLockedUntil}}{{^lineLockedUntil}}{{t.not_locked}}{{/lineLockedUntil}}</td></tr>
        </table>
        <div class="actions no-print">
        <p class="muted">{{t.actions_explained}}</p>
        {{#blockedSince}}\(action("unblock")){{/blockedSince}}{{^blockedSince}}\(action("block")){{/blockedSince}}
        \(action("set-limit", extra: "<input class=\"limit\" name=\"limit\" type=\"number\" min=\"1\" required placeholder=\"{{t.new_limit}}\" aria-label=\"{{t.new_limit}}\">"))
        {{#userLimit}}\(action("clear-limit")){{/userLimit}}
        </div>
        <h2>{{t.purchase_ids}}</h2>
        {{#hasPurchaseIDs}}<div class="scroll"><table id="purchase-ids">
        <tr><th>{{t.purchase_id}}</th><th>{{t.status}}</th><th>{{t.issued}}</th><th>{{t.lock}}</th><th class="num">{{t.failures}}</th><th class="no-print">{{t.actions}}</th></tr>
        {{#purchaseIDs}}<tr data-purchase-id="{{purchaseId}}"><td>{{purchaseId}}</td><td>{{#isActive}}{{t.active}}{{/isActive}}{{^isActive}}{{t.revoked}} {{revokedAt}}{{/isActive}}</td><td>{{issuedAt}}</td>
        <td class="lock">{{#lockedUntil}}<span class="refused">{{t.locked_until}} {{lockedUntil}}</span>{{/lockedUntil}}</td><td class="num">{{failures}}</td>
        <td class="no-print">{{#canUnlock}}\(action("unlock-id", hidden: ["purchaseId"])){{/canUnlock}}{{#isActive}}\(action("revoke-id", hidden: ["purchaseId"])){{/isActive}}</td></tr>{{/purchaseIDs}}
        </table></div>{{/hasPurchaseIDs}}{{^hasPurchaseIDs}}<p>{{t.none}}</p>{{/hasPurchaseIDs}}
        <h2>{{t.requests}}</h2>
        {{#moreRequests}}<p class="muted">{{t.more_requests}}</p>{{/moreRequests}}
        {{#hasRequests}}<div class="scroll"><table id="requests">
        <tr><th>{{t.time}}</th><th>{{t.merchant}}</th><th>{{t.kind}}</th><th>{{t.id}}</th><th>{{t.answer}}</th><th class="num">{{t.amount}}</th><th>{{t.description}}</th><th>{{t.month}}</th><th>{{t.now}}</th><th class="no-print">{{t.actions}}</th></tr>
        {{#requests}}<tr data-request="{{requestId}}"><td>{{time}}</td><td>{{merchant}}</td><td>{{kindLabel}}</td><td>{{requestId}}</td>
        <td class="answer">{{#accepted}}<span class="accepted">{{t.accepted}}</span>{{/accepted}}{{^accepted}}<span class="refused">{{t.refused}}: <code class="reason-code">{{reason}}</code></span>{{/accepted}}</td>
        <td class="num">{{amount}}</td><td>{{description}}</td><td>{{cycle}}</td><td>{{state}}{{#disputed}} <strong class="refused disputed">{{t.disputed}}: {{disputed}}</strong>{{/disputed}}</td>
        <td class="no-print">{{#canDispute}}\(action("dispute", hidden: ["merchant", "kind", "requestId"])){{/canDispute}}{{#disputed}}\(action("clear-dispute", hidden: ["merchant", "kind", "requestId"])){{/disputed}}</td></tr>{{/requests}}
        </table></div>{{/hasRequests}}{{^hasRequests}}<p>{{t.none}}</p>{{/hasRequests}}
        <h2>{{t.subscriptions}}</h2>
        {{#hasSubscriptions}}<div class="scroll"><table id="subscriptions">
        <tr><th>{{t.merchant}}</th><th>{{t.id}}</th><th>{{t.description}}</th><th class="num">{{t.monthly}}</th><th>{{t.from}}</th><th>{{t.to}}</th><th class="num">{{t.months_billed}}</th><th class="no-print">{{t.actions}}</th></tr>
        {{#subscriptions}}<tr data-subscription="{{subscriptionId}}"><td>{{merchant}}</td><td>{{subscriptionId}}</td><td>{{description}}</td><td class="num">{{monthly}}</td><td>{{startCycle}}</td><td>{{#lastCycle}}{{lastCycle}}{{/lastCycle}}{{^lastCycle}}{{t.running}}{{/lastCycle}}</td><td class="num">{{monthsBilled}}</td>
        <td class="no-print">{{#running}}\(action("cancel-subscription", hidden: ["merchant", "subscriptionId"])){{/running}}</td></tr>{{/subscriptions}}
        </table></div>{{/hasSubscriptions}}{{^hasSubscriptions}}<p>{{t.none}}</p>{{/hasSubscriptions}}
        <h2>{{t.bills}}</h2>
        {{#bills}}<h3 class="bill">{{t.bill}} {{billId}}: {{total}} · {{payment}}{{#hasPaid}} ({{t.paid}} {{paid}}){{/hasPaid}}</h3>
        <div class="scroll"><table><tr><th>{{t.merchant}}</th><th>{{t.kind}}</th><th>{{t.id}}</th><th>{{t.description}}</th><th class="num">{{t.amount}}</th></tr>
        {{#items}}<tr><td>{{merchant}}</td><td>{{kind}}</td><td>{{reference}}</td><td>{{description}}</td><td class="num">{{amount}}</td></tr>{{/items}}
        </table></div>{{/bills}}{{^bills}}<p>{{t.none}}</p>{{/bills}}
        """,
        "audit": """
        <h1>{{t.audit_title}}</h1>
        <form class="search" method="get" action="/audit">
        <label>{{t.audit_line}}<input id="audit-line" name="line" value="{{line}}" maxlength="64"></label>
        <button>{{t.show}}</button>
        <a id="audit-csv" href="/audit.csv">{{t.audit_csv}}</a>
        </form>
        <div class="scroll"><table id="audit"><tr><th>{{t.time}}</th><th>{{t.who}}</th><th>{{t.action}}</th><th>{{t.subject}}</th><th>{{t.detail}}</th><th>{{t.from_address}}</th></tr>
        {{#rows}}<tr><td>{{time}}</td><td>{{who}}</td><td class="action">{{action}}</td><td>{{subject}}</td><td class="detail">{{detail}}</td><td>{{address}}</td></tr>{{/rows}}
        </table></div>
        """,
    ]
}
