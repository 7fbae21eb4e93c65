/// The merchant site's page templates (inside the shared layout). `{{x}}` is escaped; `{{{x}}}` is used only
/// for markup the site made itself (the chart).
enum MerchantTemplates {
    static let all: [String: String] = [
        "overview": """
        <h1>{{t.overview_title}}</h1>
        <h2>{{t.this_month}} ({{month}})</h2>
        <div class="cards">
        <div class="card"><div>{{t.accepted}}</div><div class="figure" id="accepted">{{accepted}}</div></div>
        <div class="card"><div>{{t.refused}}</div><div class="figure refused" id="refused">{{refused}}</div></div>
        <div class="card"><div>{{t.cancelled}}</div><div class="figure" id="cancelled">{{cancelled}}</div></div>
        <div class="card"><div>{{t.gross}}</div><div class="figure" id="gross">{{gross}}</div></div>
        </div>
        <h2>{{t.refused_by_reason}}</h2>
        {{#hasReasons}}<table><tr><th>{{t.reason}}</th><th class="num">{{t.count}}</th></tr>
        {{#reasons}}<tr><td><a href="/purchases?status=refused&amp;reason={{code}}&amp;from={{from}}">{{code}}</a></td><td class="num">{{count}}</td></tr>{{/reasons}}
        </table>{{/hasReasons}}{{^reasons}}<p>{{t.none}}</p>{{/reasons}}
        <h2>{{t.chart_title}}</h2>
        {{{chart}}}
        <form method="post" action="/logout-everywhere" class="no-print"><input type="hidden" name="csrf" value="{{csrf}}"><p><button id="logout-everywhere">{{t.logout_everywhere}}</button></p></form>
        """,
        "purchases": """
        <h1>{{heading}}</h1>
        <p class="muted">{{explained}}</p>
        <form class="search" method="get" action="{{action}}">
        <label>{{t.from}}<input type="date" name="from" value="{{search.from}}"></label>
        <label>{{t.to}}<input type="date" name="to" value="{{search.to}}"></label>
        <label>{{t.line}}<input name="line" value="{{search.line}}" maxlength="64"></label>
        <label>{{t.purchase_id}}<input id="search-id" name="id" value="{{search.id}}" maxlength="128"></label>
        <label>{{t.status}}<select name="status"><option value="">{{t.any}}</option>{{#statuses}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/statuses}}</select></label>
        <label>{{t.reason}}<input name="reason" value="{{search.reason}}" maxlength="64"></label>
        <button id="search">{{t.search}}</button>
        </form>
        {{#hasRows}}<div class="scroll"><table id="purchases">
        <tr><th>{{t.time}}</th><th>{{t.kind}}</th><th>{{t.purchase_id}}</th><th>{{t.line}}</th><th class="num">{{t.amount}}</th><th>{{t.result}}</th><th>{{t.state}}</th><th>{{t.month}}</th></tr>
        {{#rows}}<tr><td>{{time}}</td><td>{{kind}}</td><td><a class="purchase" href="{{href}}">{{id}}</a></td><td>{{line}}</td><td class="num">{{amount}}</td>
        <td>{{#accepted}}<span class="accepted">{{t.status_accepted}}</span>{{/accepted}}{{^accepted}}<span class="refused">{{t.status_refused}}: {{reason}}</span>{{/accepted}}</td><td>{{state}}{{#disputed}} <strong class="refused disputed">{{t.disputed}}</strong>{{/disputed}}</td><td>{{cycle}}</td></tr>{{/rows}}
        </table></div>{{/hasRows}}{{^rows}}<p id="no-purchases">{{t.none}}</p>{{/rows}}
        <div class="pager">{{#newer}}<a href="{{newer}}">{{t.previous}}</a>{{/newer}}{{#older}}<a id="older" href="{{older}}">{{t.next}}</a>{{/older}}</div>
        """,
        "subscriptions": """
        <h1>{{t.subscriptions_title}}</h1>
        <form class="search" method="get" action="/subscriptions">
        <label>{{t.status}}<select name="status"><option value="">{{t.any}}</option>{{#statuses}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/statuses}}</select></label>
        <button>{{t.search}}</button>
        </form>
        {{#hasRows}}<div class="scroll"><table id="subscriptions">
        <tr><th>{{t.purchase_id}}</th><th>{{t.line}}</th><th>{{t.description}}</th><th class="num">{{t.monthly_amount}}</th><th>{{t.started}}</th><th>{{t.state}}</th><th>{{t.ended}}</th><th class="num">{{t.months_billed}}</th></tr>
        {{#rows}}<tr><td><a class="subscription" href="{{href}}">{{id}}</a></td><td>{{line}}</td><td>{{description}}</td><td class="num">{{monthly}}</td><td>{{started}} ({{startCycle}})</td><td>{{state}}</td><td>{{ended}}{{#lastCycle}} ({{lastCycle}}){{/lastCycle}}</td><td class="num">{{months}}</td></tr>{{/rows}}
        </table></div>{{/hasRows}}{{^rows}}<p>{{t.none}}</p>{{/rows}}
        <div class="pager">{{#newer}}<a href="{{newer}}">{{t.previous}}</a>{{/newer}}{{#older}}<a href="{{older}}">{{t.next}}</a>{{/older}}</div>
        """,
        "dead_letters": """
        <h1>{{t.dead_letters_title}}</h1>
        <p class="muted">{{t.dead_letters_explained}}</p>
        {{#hasRows}}<div class="scroll"><table id="dead-letters">
        <tr><th>{{t.time}}</th><th>{{t.source}}</th><th>{{t.reason}}</th><th>{{t.message_key}}</th><th>{{t.message}}</th></tr>
        {{#rows}}<tr><td>{{time}}</td><td>{{source}}</td><td class="refused">{{reason}}</td><td>{{key}}</td>
        <td><pre class="message">{{value}}</pre>{{#base64}}<span class="muted">{{t.not_utf8}}</span>{{/base64}}{{#cut}}<span class="muted">{{t.cut_at}} ({{size}} {{t.bytes}})</span>{{/cut}}</td></tr>{{/rows}}
        </table></div>{{/hasRows}}{{^rows}}<p>{{t.none}}</p>{{/rows}}
        <div class="pager">{{#newer}}<a href="{{newer}}">{{t.previous}}</a>{{/newer}}{{#older}}<a href="{{older}}">{{t.next}}</a>{{/older}}</div>
        """,
        "history": """
        <h1>{{t.history_title}}: {{id}}</h1>
        {{#disputed}}<p class="notice refused" id="disputed">{{t.disputed_explained}} {{t.reason}}: {{disputed}}</p>{{/disputed}}
        {{#cancelSent}}<p class="notice" id="cancel-sent">{{t.cancel_sent}} {{#cancelPending}}<a id="reload" href="">{{t.cancel_reload}}</a>{{/cancelPending}}</p>{{/cancelSent}}
        <table id="purchase">
        <tr><th>{{t.kind}}</th><td>{{kind}}</td></tr>
        <tr><th>{{t.line}}</th><td>{{line}}</td></tr>
        {{#accepted}}<tr><th>{{t.description}}</th><td>{{description}}</td></tr>
        <tr><th>{{t.amount}}</th><td id="amount">{{amount}}</td></tr>
        <tr><th>{{t.month}}</th><td>{{cycle}}</td></tr>
        <tr><th>{{t.state}}</th><td id="state">{{state}}</td></tr>{{/accepted}}
        {{#creditedIn}}<tr><th>{{t.credited_in}}</th><td id="credited-in">{{creditedIn}}</td></tr>{{/creditedIn}}
        </table>
        <h2>{{t.history}}</h2>
        <table id="history"><tr><th>{{t.time}}</th><th>{{t.kind}}</th><th>{{t.result}}</th><th>{{t.month}}</th></tr>
        {{#results}}<tr><td>{{time}}</td><td>{{type}}</td><td>{{#accepted}}<span class="accepted">{{t.status_accepted}}</span>{{/accepted}}{{^accepted}}<span class="refused">{{t.status_refused}}: {{reason}}</span>{{/accepted}}</td><td>{{cycle}}</td></tr>{{/results}}
        </table>
        <h2>{{t.bills}}</h2>
        {{#hasBills}}<ul id="bills">{{#bills}}<li>{{cycle}}: {{billID}}</li>{{/bills}}</ul>{{/hasBills}}{{^bills}}<p>{{t.not_billed_yet}}</p>{{/bills}}
        {{#canCancel}}<h2>{{t.cancel_title}}</h2>
        <form id="cancel" class="no-print" method="post" action="{{cancelAction}}">
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="line" value="{{line}}">
        <p>{{t.cancel_explained}}</p>
        <label>{{t.cancel_reason}}<textarea id="cancel-reason" name="reason" required maxlength="500" rows="2"></textarea></label>
        <p><button id="cancel-submit">{{t.cancel_button}}</button></p>
        </form>{{/canCancel}}
        """,
        "settlements": """
        <h1>{{t.settlements_title}}</h1>
        {{#hasRows}}<div class="scroll"><table id="settlements">
        <tr><th>{{t.month}}</th><th class="num">{{t.lines}}</th><th class="num">{{t.gross}}</th><th>{{t.fee_rule}}</th><th class="num">{{t.fee_before_tax}}</th><th class="num">{{t.tax}}</th><th class="num">{{t.fee}}</th><th class="num">{{t.net}}</th><th>{{t.statement}}</th></tr>
        {{#rows}}<tr><td>{{cycle}}</td><td class="num">{{lines}}</td><td class="num">{{gross}}</td><td>{{rule}}</td><td class="num">{{feeBeforeTax}}</td><td class="num">{{tax}}</td><td class="num">{{fee}}</td><td class="num">{{net}}</td>
        <td><a href="/settlements/{{cycle}}">{{t.statement}}</a> · <a class="csv" href="/settlements/{{cycle}}/statement.csv">{{t.csv}}</a></td></tr>{{/rows}}
        </table></div>{{/hasRows}}{{^rows}}<p>{{t.none}}</p>{{/rows}}
        """,
        "statement": """
        <h1>{{t.statement_title}}: {{cycle}}</h1>
        <p>{{merchantName}} ({{merchant}})</p>
        <table id="statement">
        <tr><th>{{t.lines}}</th><td class="num">{{lines}}</td></tr>
        <tr><th>{{t.items}}</th><td class="num">{{items}}</td></tr>
        <tr><th>{{t.credits}}</th><td class="num">{{credits}}</td></tr>
        <tr><th>{{t.gross}}</th><td class="num" id="statement-gross">{{gross}}</td></tr>
        <tr><th>{{t.average_per_line}}</th><td class="num">{{average}}</td></tr>
        <tr><th>{{t.fee_rule}}</th><td>{{rule}}</td></tr>
        <tr><th>{{t.fee_before_tax}}</th><td class="num">{{feeBeforeTax}}</td></tr>
        <tr><th>{{t.tax}}</th><td class="num">{{tax}} ({{taxRate}})</td></tr>
        <tr><th>{{t.fee}}</th><td class="num" id="statement-fee">{{fee}}</td></tr>
        <tr><th>{{t.net}}</th><td class="num" id="statement-net">{{net}}</td></tr>
        </table>
        <p>{{t.statement_csv_note}} <a id="statement-csv" href="/settlements/{{cycle}}/statement.csv">{{t.csv}}</a></p>
        """,
        "payouts": """
        <h1>{{t.payouts_title}}</h1>
        {{#rows}}<h2>{{period}}</h2>
        <p>{{t.payable_on}}: {{payableOn}} · {{t.carried_in}}: {{carriedIn}} · <strong>{{t.amount_payable}}: <span class="payable">{{payable}}</span></strong> · {{t.carried_out}}: {{carriedOut}}</p>
        <div class="scroll"><table><tr><th>{{t.billed_month}}</th><th class="num">{{t.collected}}</th><th class="num">{{t.reversed}}</th><th class="num">{{t.written_off}}</th><th class="num">{{t.fee}}</th><th class="num">{{t.payable}}</th></tr>
        {{#lines}}<tr><td>{{cycle}}</td><td class="num">{{collected}}</td><td class="num">{{reversed}}</td><td class="num">{{writtenOff}}</td><td class="num">{{fee}}</td><td class="num">{{payable}}</td></tr>{{/lines}}
        </table></div>{{/rows}}{{^rows}}<p>{{t.none}}</p>{{/rows}}
        """,
        "staff": """
        <h1>{{t.staff_title}}</h1>
        {{#done}}<p class="notice" id="done">{{done}}</p>{{/done}}
        <div class="scroll"><table id="staff">
        <tr><th>{{t.login_id}}</th><th>{{t.name}}</th><th>{{t.role}}</th><th>{{t.second_factor}}</th><th>{{t.state}}</th><th class="no-print">{{t.actions}}</th></tr>
        {{#rows}}<tr data-login="{{login}}"><td>{{login}}</td><td>{{name}}</td><td>{{role}}</td><td>{{#totp}}TOTP{{/totp}}</td><td class="state">{{state}}</td>
        <td class="no-print">{{#self}}<span class="muted">{{t.staff_you}}</span>{{/self}}{{^self}}<form class="inline" method="post" action="/staff/change">
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="login" value="{{login}}">
        {{#active}}<button name="action" value="disable">{{t.staff_disable}}</button>{{/active}}{{^active}}<button name="action" value="enable">{{t.staff_enable}}</button>{{/active}}
        {{#locked}}<button name="action" value="unlock">{{t.staff_unlock}}</button>{{/locked}}
        <button name="action" value="reset-password">{{t.staff_reset_password}}</button>
        <input type="hidden" name="role" value="{{otherRole}}"><button name="action" value="role">{{otherRoleLabel}}</button>
        </form>{{/self}}</td></tr>{{/rows}}
        </table></div>
        <h2>{{t.staff_add_title}}</h2>
        <form id="add-staff" method="post" action="/staff">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <label>{{t.login_id}}<input id="new-login" name="login" type="email" maxlength="254" required></label>
        <label>{{t.name}}<input name="name" maxlength="100"></label>
        <label>{{t.role}}<select id="new-role" name="role">{{#roles}}<option value="{{value}}">{{label}}</option>{{/roles}}</select></label>
        <label class="check"><input type="checkbox" name="totp" value="on"> {{t.staff_with_totp}}</label>
        <p><button id="add-staff-submit">{{t.staff_add_button}}</button></p>
        <p class="muted">{{t.staff_add_explained}}</p>
        </form>
        """,
        "staff_credentials": """
        <h1>{{heading}}</h1>
        <p class="notice">{{t.shown_once}}</p>
        <table id="credentials">
        <tr><th>{{t.login_id}}</th><td id="credential-login">{{login}}</td></tr>
        <tr><th>{{t.password}}</th><td><code id="new-password">{{password}}</code></td></tr>
        {{#totp}}<tr><th>TOTP</th><td><code id="new-totp">{{secret}}</code><br><code class="muted">{{uri}}</code></td></tr>{{/totp}}
        </table>
        <p><a href="/staff">{{t.back_to_staff}}</a></p>
        """,
        "keys": """
        <h1>{{t.keys_title}}</h1>
        <p class="muted">{{t.keys_explained}}</p>
        {{#done}}<p class="notice" id="done">{{done}}</p>{{/done}}
        {{#hasRows}}<div class="scroll"><table id="keys">
        <tr><th>{{t.key_id}}</th><th>{{t.created}}</th><th>{{t.state}}</th><th class="no-print">{{t.actions}}</th></tr>
        {{#rows}}<tr data-key="{{id}}"><td><code>{{id}}</code></td><td>{{created}}</td><td>{{#valid}}<span class="accepted">{{t.key_valid}}</span>{{/valid}}{{^valid}}{{t.key_revoked}} {{revoked}}{{/valid}}</td>
        <td class="no-print">{{#valid}}<form class="inline" method="post" action="/keys/revoke"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="keyId" value="{{id}}"><button class="revoke">{{t.key_revoke}}</button></form>{{/valid}}</td></tr>{{/rows}}
        </table></div>{{/hasRows}}{{^rows}}<p>{{t.none}}</p>{{/rows}}
        {{#canCreate}}<form id="create-key" method="post" action="/keys"><input type="hidden" name="csrf" value="{{csrf}}"><p><button id="create-key-submit">{{t.key_create}}</button></p></form>{{/canCreate}}
        {{^canCreate}}<p class="muted" id="keys-full">{{t.keys_at_most}}</p>{{/canCreate}}
        """,
        "key_secret": """
        <h1>{{t.key_created_title}}</h1>
        <p class="notice">{{t.shown_once}}</p>
        <table id="key-secret">
        <tr><th>{{t.key_id}}</th><td><code id="new-key-id">{{keyID}}</code></td></tr>
        <tr><th>{{t.key_secret}}</th><td><code id="new-key-secret">{{secret}}</code></td></tr>
        </table>
        <p class="muted">{{t.key_secret_explained}}</p>
        <p><a href="/keys">{{t.back_to_keys}}</a></p>
        """,
        "audit": """
        <h1>{{t.audit_title}}</h1>
        <div class="scroll"><table id="audit"><tr><th>{{t.time}}</th><th>{{t.who}}</th><th>{{t.action}}</th><th>{{t.subject}}</th><th>{{t.detail}}</th><th>{{t.from_address}}</th></tr>
        {{#rows}}<tr><td>{{time}}</td><td>{{who}}</td><td class="action">{{action}}</td><td>{{subject}}</td><td>{{detail}}</td><td>{{address}}</td></tr>{{/rows}}
        </table></div>
        """,
    ]
}
