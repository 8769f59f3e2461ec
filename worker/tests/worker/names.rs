//! Names in SNMP results (issue 25): with MIBs compiled into the tenant's
//! tree, `snmp.get` and `snmp.walk` against a real snmpd carry each value's
//! `MODULE::name` with its instance (a table's index decoded) and its
//! display value (an enumeration's label, a display hint applied). The
//! MIBs are small ones this test writes: the IETF texts are not packaged.

use crate::support::*;
use ferro_db::TenantCtx;
use ferro_mibs::ModuleSource;
use ferro_tasks::JobKind;
use ferro_testkit::SnmpAgent;
use serde_json::{Value, json};

const MINI_SNMPV2_MIB: &str = r#"SNMPv2-MIB DEFINITIONS ::= BEGIN
IMPORTS MODULE-IDENTITY, OBJECT-TYPE, TimeTicks, mib-2 FROM SNMPv2-SMI
        DisplayString, TimeStamp FROM SNMPv2-TC;
system OBJECT IDENTIFIER ::= { mib-2 1 }
sysDescr OBJECT-TYPE SYNTAX DisplayString (SIZE (0..255)) MAX-ACCESS read-only
    STATUS current DESCRIPTION "A description of the entity." ::= { system 1 }
sysUpTime OBJECT-TYPE SYNTAX TimeTicks MAX-ACCESS read-only
    STATUS current DESCRIPTION "Time since the agent started." ::= { system 3 }
sysLocation OBJECT-TYPE SYNTAX DisplayString (SIZE (0..255)) MAX-ACCESS read-write
    STATUS current DESCRIPTION "Where the node is." ::= { system 6 }
sysORTable OBJECT-TYPE SYNTAX SEQUENCE OF SysOREntry MAX-ACCESS not-accessible
    STATUS current DESCRIPTION "Capabilities." ::= { system 9 }
sysOREntry OBJECT-TYPE SYNTAX SysOREntry MAX-ACCESS not-accessible
    STATUS current DESCRIPTION "A capability." INDEX { sysORIndex } ::= { sysORTable 1 }
SysOREntry ::= SEQUENCE { sysORIndex INTEGER, sysORID OBJECT IDENTIFIER,
    sysORDescr DisplayString, sysORUpTime TimeStamp }
sysORIndex OBJECT-TYPE SYNTAX INTEGER (1..2147483647) MAX-ACCESS not-accessible
    STATUS current DESCRIPTION "The row's number." ::= { sysOREntry 1 }
sysORDescr OBJECT-TYPE SYNTAX DisplayString MAX-ACCESS read-only
    STATUS current DESCRIPTION "The capability." ::= { sysOREntry 3 }
END
"#;

const MINI_IF_MIB: &str = r#"IF-MIB DEFINITIONS ::= BEGIN
IMPORTS OBJECT-TYPE, Integer32, mib-2 FROM SNMPv2-SMI
        DisplayString FROM SNMPv2-TC;
interfaces OBJECT IDENTIFIER ::= { mib-2 2 }
ifTable OBJECT-TYPE SYNTAX SEQUENCE OF IfEntry MAX-ACCESS not-accessible
    STATUS current DESCRIPTION "Interfaces." ::= { interfaces 2 }
ifEntry OBJECT-TYPE SYNTAX IfEntry MAX-ACCESS not-accessible
    STATUS current DESCRIPTION "An interface." INDEX { ifIndex } ::= { ifTable 1 }
IfEntry ::= SEQUENCE { ifIndex Integer32, ifDescr DisplayString, ifAdminStatus INTEGER }
ifIndex OBJECT-TYPE SYNTAX Integer32 (1..2147483647) MAX-ACCESS read-only
    STATUS current DESCRIPTION "The interface's number." ::= { ifEntry 1 }
ifDescr OBJECT-TYPE SYNTAX DisplayString (SIZE (0..255)) MAX-ACCESS read-only
    STATUS current DESCRIPTION "The interface." ::= { ifEntry 2 }
ifAdminStatus OBJECT-TYPE SYNTAX INTEGER { up(1), down(2), testing(3) } MAX-ACCESS read-write
    STATUS current DESCRIPTION "The desired state." ::= { ifEntry 7 }
END
"#;

/// Compiles the two modules into the rig's tenant's tree, as a
/// `mib.compile` job would.
async fn compile_into_tenant(rig: &Rig) {
    let modules = [("SNMPv2-MIB", MINI_SNMPV2_MIB), ("IF-MIB", MINI_IF_MIB)]
        .map(|(name, text)| ModuleSource {
            name: name.to_owned(),
            source: text.to_owned(),
            file_id: None,
        })
        .to_vec();
    let compiled = ferro_mibs::compile::compile(Vec::new(), modules).unwrap();
    for m in &compiled.modules {
        assert_eq!(m.status, "ok", "{}: {:?}", m.name, m.diagnostics);
    }
    let app = rig.db.app().await;
    let mut tx = app
        .begin(TenantCtx::new(rig.db.default_tenant(), None))
        .await
        .unwrap();
    ferro_mibs::records::save(&mut tx, &compiled).await.unwrap();
    tx.commit().await.unwrap();
}

fn by_oid<'a>(values: &'a Value, oid: &str) -> &'a Value {
    values
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["oid"] == oid)
        .unwrap_or_else(|| panic!("no {oid} in {values}"))
}

#[tokio::test]
async fn snmp_results_carry_mib_names_and_display_values() {
    let agent = SnmpAgent::start();
    let rig = Rig::start_on(Backend::RabbitMq, None).await;
    let device = snmp_device(&rig, agent.port, SnmpAgent::COMMUNITY).await;

    // Before any MIB: numbers only.
    let id = rig
        .submit(
            JobKind::SnmpGet,
            Some(device),
            json!({"oids": ["1.3.6.1.2.1.1.1.0"]}),
        )
        .await;
    rig.wait_for(id, &["succeeded"], 15).await;
    let values = rig.results(id).await[0]["values"].clone();
    assert!(values[0].get("name").is_none(), "{values}");

    compile_into_tenant(&rig).await;
    let id = rig
        .submit(
            JobKind::SnmpGet,
            Some(device),
            json!({"oids": ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.2.2.1.7.1", "1.3.6.1.2.1.1.3.0"]}),
        )
        .await;
    rig.wait_for(id, &["succeeded"], 15).await;
    let values = rig.results(id).await[0]["values"].clone();
    let descr = by_oid(&values, "1.3.6.1.2.1.1.1.0");
    assert_eq!(descr["name"], "SNMPv2-MIB::sysDescr.0");
    assert_eq!(descr["value"], "Ferrostack test agent");
    assert_eq!(descr["display"], "Ferrostack test agent");
    let admin = by_oid(&values, "1.3.6.1.2.1.2.2.1.7.1");
    assert_eq!(admin["name"], "IF-MIB::ifAdminStatus.1", "{admin}");
    assert_eq!(admin["value"], 1);
    assert_eq!(admin["display"], "up");
    assert_eq!(
        by_oid(&values, "1.3.6.1.2.1.1.3.0")["name"],
        "SNMPv2-MIB::sysUpTime.0"
    );

    let id = rig
        .submit(
            JobKind::SnmpWalk,
            Some(device),
            json!({"oid": "1.3.6.1.2.1.1"}),
        )
        .await;
    rig.wait_for(id, &["succeeded"], 15).await;
    let values = rig.results(id).await[0]["values"].clone();
    let location = by_oid(&values, "1.3.6.1.2.1.1.6.0");
    assert_eq!(location["name"], "SNMPv2-MIB::sysLocation.0");
    assert_eq!(location["display"], "test-lab");
    let row = values
        .as_array()
        .unwrap()
        .iter()
        .find(|v| {
            v["oid"]
                .as_str()
                .unwrap()
                .starts_with("1.3.6.1.2.1.1.9.1.3.")
        })
        .unwrap_or_else(|| panic!("a sysORDescr row in {values}"));
    let index = row["oid"].as_str().unwrap().rsplit('.').next().unwrap();
    assert_eq!(row["name"], format!("SNMPv2-MIB::sysORDescr.{index}"));
    // An object no module defines is named under its deepest known node.
    let object_id = by_oid(&values, "1.3.6.1.2.1.1.2.0");
    assert_eq!(object_id["name"], "SNMPv2-MIB::system.2.0");
    assert!(object_id.get("display").is_none());
    rig.stop().await;
}
