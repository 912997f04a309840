//! Reads a tray the way a desktop shell does: a StatusNotifierWatcher that items register
//! with, the item's properties (`org.kde.StatusNotifierItem`), and its menu over
//! `com.canonical.dbusmenu` (`GetLayout`, and `Event` to click an item).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use zbus::message::Header;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
use zbus::{interface, Connection};

/// A registered tray item: the bus name that owns it and its object path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayItem {
    pub bus_name: String,
    pub path: String,
}

#[derive(Default)]
struct Registry {
    items: Mutex<Vec<TrayItem>>,
}

struct Watcher {
    registry: Arc<Registry>,
}

#[interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    async fn register_status_notifier_item(
        &self,
        service: &str,
        #[zbus(header)] header: Header<'_>,
    ) {
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        // Items pass either their object path (sender owns it) or a bus name.
        let item = if service.starts_with('/') {
            TrayItem {
                bus_name: sender,
                path: service.to_string(),
            }
        } else {
            TrayItem {
                bus_name: service.to_string(),
                path: "/StatusNotifierItem".to_string(),
            }
        };
        if let Ok(mut items) = self.registry.items.lock() {
            items.push(item);
        }
    }

    async fn register_status_notifier_host(&self, _service: &str) {}

    #[zbus(property)]
    async fn registered_status_notifier_items(&self) -> Vec<String> {
        self.registry
            .items
            .lock()
            .map(|items| {
                items
                    .iter()
                    .map(|i| format!("{}{}", i.bus_name, i.path))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[zbus(property)]
    async fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    async fn protocol_version(&self) -> i32 {
        0
    }
}

/// One entry of a dbusmenu layout.
#[derive(Debug, Clone)]
pub struct MenuNode {
    pub id: i32,
    pub label: String,
    pub kind: String,
    pub enabled: bool,
    pub visible: bool,
    pub children: Vec<MenuNode>,
}

impl MenuNode {
    /// The labels of this node's children, with separators as "---".
    pub fn labels(&self) -> Vec<String> {
        self.children
            .iter()
            .filter(|c| c.visible)
            .map(|c| {
                if c.kind == "separator" {
                    "---".to_string()
                } else {
                    c.label.clone()
                }
            })
            .collect()
    }

    /// The entry at a path of labels (`["Storefront", "main › app", "Open tunnels"]`).
    pub fn at(&self, path: &[&str]) -> Option<&MenuNode> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        self.children
            .iter()
            .find(|c| c.label == *first)
            .and_then(|c| c.at(rest))
    }

    pub fn find(&self, label: &str) -> Option<&MenuNode> {
        self.children.iter().find_map(|c| {
            if c.label == label {
                Some(c)
            } else {
                c.find(label)
            }
        })
    }
}

pub struct TrayWatcher {
    registry: Arc<Registry>,
    connection: Connection,
}

type Layout = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);

/// A child of a layout: a variant holding `(ia{sv}av)`.
fn child_node(value: &Value<'_>) -> Result<MenuNode> {
    let value = match value {
        Value::Value(inner) => inner.as_ref(),
        v => v,
    };
    let Value::Structure(s) = value else {
        bail!("a dbusmenu node is not a structure: {value:?}");
    };
    let fields = s.fields();
    let (Some(Value::I32(id)), Some(Value::Dict(props)), Some(Value::Array(children))) =
        (fields.first(), fields.get(1), fields.get(2))
    else {
        bail!("a dbusmenu node is not (ia{{sv}}av): {fields:?}");
    };
    let props: HashMap<String, OwnedValue> = HashMap::try_from(props.try_clone()?)?;
    let children = children
        .iter()
        .map(|c| Ok(OwnedValue::try_from(c.try_clone()?)?))
        .collect::<Result<Vec<_>>>()?;
    node((*id, props, children))
}

/// A GTK label as shown: `__` is an underscore, a single `_` marks the mnemonic.
fn without_mnemonic(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut chars = label.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' {
            if chars.peek() == Some(&'_') {
                chars.next();
                out.push('_');
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn node((id, props, children): Layout) -> Result<MenuNode> {
    let string = |k: &str| {
        props
            .get(k)
            .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
            .unwrap_or_default()
    };
    let flag = |k: &str| {
        props
            .get(k)
            .and_then(|v| bool::try_from(v).ok())
            .unwrap_or(true)
    };
    Ok(MenuNode {
        id,
        label: without_mnemonic(&string("label")),
        kind: string("type"),
        enabled: flag("enabled"),
        visible: flag("visible"),
        children: children
            .iter()
            .map(|c| child_node(c))
            .collect::<Result<_>>()?,
    })
}

/// The watcher's well-known name: a tray host is there while someone owns it.
pub const WATCHER_NAME: &str = "org.kde.StatusNotifierWatcher";

impl TrayWatcher {
    /// Serves `org.kde.StatusNotifierWatcher` on the bus at `address`.
    pub async fn start(address: &str) -> Result<TrayWatcher> {
        let watcher = TrayWatcher::start_unnamed(address).await?;
        watcher.appear().await?;
        Ok(watcher)
    }

    /// Serves the watcher's object without taking its name: to the apps on the bus, a desktop
    /// with no tray host (stock GNOME) until [`TrayWatcher::appear`].
    pub async fn start_unnamed(address: &str) -> Result<TrayWatcher> {
        let registry = Arc::new(Registry::default());
        let connection = zbus::connection::Builder::address(address)?
            .serve_at(
                "/StatusNotifierWatcher",
                Watcher {
                    registry: registry.clone(),
                },
            )?
            .build()
            .await?;
        Ok(TrayWatcher {
            registry,
            connection,
        })
    }

    /// Takes the watcher's name, as a panel starting (or a GNOME extension turned on) does.
    pub async fn appear(&self) -> Result<()> {
        self.connection.request_name(WATCHER_NAME).await?;
        Ok(())
    }

    /// Gives the name up, as a panel quitting (or the extension turned off) does.
    pub async fn vanish(&self) -> Result<()> {
        self.connection.release_name(WATCHER_NAME).await?;
        Ok(())
    }

    /// Waits for a tray item to register.
    pub async fn wait_for_item(&self, timeout: Duration) -> Result<TrayItem> {
        let start = Instant::now();
        loop {
            if let Some(item) = self
                .registry
                .items
                .lock()
                .ok()
                .and_then(|i| i.first().cloned())
            {
                return Ok(item);
            }
            if start.elapsed() > timeout {
                bail!("no tray item registered with the StatusNotifierWatcher in {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn proxy(
        &self,
        bus: &str,
        path: &str,
        interface: &'static str,
    ) -> Result<zbus::Proxy<'static>> {
        Ok(zbus::Proxy::new(
            &self.connection,
            bus.to_string(),
            path.to_string(),
            interface,
        )
        .await?)
    }

    /// A string property of the item (`Title`, `Id`, `Status`, `IconName`, `ToolTip`…).
    pub async fn item_property(&self, item: &TrayItem, name: &str) -> Result<String> {
        let p = self
            .proxy(&item.bus_name, &item.path, "org.kde.StatusNotifierItem")
            .await?;
        Ok(p.get_property::<String>(name).await?)
    }

    async fn menu_path(&self, item: &TrayItem) -> Result<String> {
        let p = self
            .proxy(&item.bus_name, &item.path, "org.kde.StatusNotifierItem")
            .await?;
        let path: OwnedObjectPath = p.get_property("Menu").await?;
        Ok(path.to_string())
    }

    /// The item's whole menu, from `GetLayout(0, -1, [])`.
    pub async fn menu(&self, item: &TrayItem) -> Result<MenuNode> {
        let path = self.menu_path(item).await?;
        let p = self
            .proxy(&item.bus_name, &path, "com.canonical.dbusmenu")
            .await?;
        let reply = p
            .call_method("GetLayout", &(0i32, -1i32, Vec::<String>::new()))
            .await?;
        let body = reply.body();
        let (_revision, layout): (u32, Layout) = body.deserialize()?;
        node(layout)
    }

    /// Waits until the menu has an entry labelled `label` (menus are filled after registration).
    pub async fn wait_for_menu_entry(
        &self,
        item: &TrayItem,
        label: &str,
        timeout: Duration,
    ) -> Result<MenuNode> {
        let start = Instant::now();
        loop {
            match self.menu(item).await {
                Ok(menu) if menu.find(label).is_some() => return Ok(menu),
                Ok(menu) if start.elapsed() > timeout => {
                    bail!("the tray menu has no {label:?}: {:?}", menu.labels())
                }
                Err(e) if start.elapsed() > timeout => {
                    return Err(e.context(format!("the tray menu of {item:?} cannot be read")))
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks a menu entry as a panel does: `Event(id, "clicked", 0, time)`. An app that exits
    /// on the click (Quit) may leave the bus before it answers; that counts as clicked.
    pub async fn click(&self, item: &TrayItem, label: &str) -> Result<()> {
        let menu = self.menu(item).await?;
        let node = menu
            .find(label)
            .ok_or_else(|| anyhow!("no menu entry {label:?}"))?;
        self.click_node(item, node.id).await
    }

    /// Clicks the entry at a path of labels (see [`MenuNode::at`]).
    pub async fn click_path(&self, item: &TrayItem, path: &[&str]) -> Result<()> {
        let menu = self.menu(item).await?;
        let node = menu
            .at(path)
            .ok_or_else(|| anyhow!("no menu entry {path:?} in {menu:#?}"))?;
        self.click_node(item, node.id).await
    }

    async fn click_node(&self, item: &TrayItem, id: i32) -> Result<()> {
        let node = MenuNode {
            id,
            label: String::new(),
            kind: String::new(),
            enabled: true,
            visible: true,
            children: Vec::new(),
        };
        let path = self.menu_path(item).await?;
        let p = self
            .proxy(&item.bus_name, &path, "com.canonical.dbusmenu")
            .await?;
        match p
            .call_method("Event", &(node.id, "clicked", Value::from(0i32), 0u32))
            .await
        {
            Ok(_) => Ok(()),
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.DBus.Error.NoReply" =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}
