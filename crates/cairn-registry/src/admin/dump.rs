//! Export to and import from a dump file ([`cairn_stores::dump`]).
//!
//! The file is written and read on a blocking thread; records reach it (or come from it) a
//! page at a time through a channel of two pages, so memory stays bounded by a few pages
//! whatever the size of the data.

use std::io::{BufReader, Read, Write};
use std::str::FromStr;

use cairn_core::{Bytes, Error, ErrorKind, Result, TenantId};
use cairn_stores::dump::{Compression, DumpHeader, DumpItem, DumpReader, DumpWriter};
use cairn_stores::portable::fingerprint;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Progress, Selection, page_for};
use crate::Storage;
use crate::component::Component;

/// How many records (and bytes) one tenant's component held in a dump or an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionCount {
    /// The tenant.
    pub tenant: TenantId,
    /// The component.
    pub component: Component,
    /// Records.
    pub records: u64,
    /// Bytes of all records together.
    pub bytes: u64,
}

/// What the exporting task sends the writing thread.
enum Frame {
    Begin(TenantId, Component),
    Records(Vec<Bytes>),
    End,
}

/// The thread that owns a [`DumpWriter`].
fn spawn_writer<W: Write + Send + 'static>(
    out: W,
    header: DumpHeader,
    compression: Compression,
) -> (mpsc::Sender<Frame>, JoinHandle<Result<W>>) {
    let (sender, mut frames) = mpsc::channel::<Frame>(2);
    let thread = tokio::task::spawn_blocking(move || {
        let mut writer = DumpWriter::create(out, &header, compression)?;
        while let Some(frame) = frames.blocking_recv() {
            match frame {
                Frame::Begin(tenant, component) => {
                    writer.begin_section(component.name(), tenant.as_str())?;
                }
                Frame::Records(records) => {
                    for record in &records {
                        writer.record(record)?;
                    }
                }
                Frame::End => {
                    writer.end_section()?;
                }
            }
        }
        writer.finish()
    });
    (sender, thread)
}

/// The error of a writing or reading thread that stopped early, or of the thread itself.
async fn thread_result<T>(thread: JoinHandle<Result<T>>) -> Result<T> {
    thread.await.map_err(|err| {
        Error::new(ErrorKind::Backend, "the dump file's thread failed").with_source(err)
    })?
}

/// Which backends `storage` puts its components on, for a dump header: one name when all
/// share one, else `component=backend` pairs.
pub(crate) fn describe(storage: &Storage) -> String {
    let choices: Vec<_> = Component::ALL
        .iter()
        .map(|c| (c, storage.backend_choice(*c)))
        .collect();
    if choices.iter().all(|(_, choice)| *choice == choices[0].1) {
        return choices[0].1.name().to_owned();
    }
    choices
        .iter()
        .map(|(c, choice)| format!("{c}={choice}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes the selected tenants' components of `storage` to `out` as a dump and returns `out`
/// (flushed) with the count of every section, reading `page` records at a time.
///
/// The dump is consistent per page, not as a whole: stop writers for an exact snapshot.
///
/// # Errors
/// The stores' export errors; `Backend` when writing fails. `out` then holds an incomplete
/// dump, which every reader rejects.
pub async fn export<W: Write + Send + 'static>(
    storage: &Storage,
    selection: &Selection,
    out: W,
    compression: Compression,
    page: usize,
    progress: &dyn Progress,
) -> Result<(W, Vec<SectionCount>)> {
    let tenants = selection.tenants_in(storage).await?;
    let header = DumpHeader {
        cairn_version: env!("CARGO_PKG_VERSION").to_owned(),
        source_backend: describe(storage),
        tenants: tenants.iter().map(|t| t.as_str().to_owned()).collect(),
        components: selection
            .components
            .iter()
            .map(|c| c.name().to_owned())
            .collect(),
        created_at: time::OffsetDateTime::now_utc(),
    };
    let (sender, thread) = spawn_writer(out, header, compression);
    let sent = export_sections(storage, selection, &tenants, page, progress, &sender).await;
    drop(sender);
    let written = thread_result(thread).await;
    match sent {
        Ok(counts) => Ok((written?, counts)),
        Err(Stop::Failed(err)) => Err(err),
        // A send fails only when the writer stopped: its error is the one to report.
        Err(Stop::WriterStopped) => Err(written
            .err()
            .unwrap_or_else(|| Error::new(ErrorKind::Backend, "the dump writer stopped early"))),
    }
}

/// Why sending sections stopped.
enum Stop {
    /// The writing thread stopped (its result says why).
    WriterStopped,
    /// Reading the data failed.
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(err: Error) -> Stop {
        Stop::Failed(err)
    }
}

/// Sends every selected section to the writing thread.
async fn export_sections(
    storage: &Storage,
    selection: &Selection,
    tenants: &[TenantId],
    page: usize,
    progress: &dyn Progress,
    sender: &mpsc::Sender<Frame>,
) -> std::result::Result<Vec<SectionCount>, Stop> {
    let closed = |_| Stop::WriterStopped;
    let mut counts = Vec::new();
    for tenant in tenants {
        let view = storage.tenant(tenant);
        for &component in &selection.components {
            let store = view.portable(component);
            let page = page_for(component, page);
            let total = match progress.wants_totals() {
                true => Some(fingerprint(store.as_ref(), page).await?.records),
                false => None,
            };
            progress.start(tenant, component, total);
            sender
                .send(Frame::Begin(tenant.clone(), component))
                .await
                .map_err(closed)?;
            let mut count = SectionCount {
                tenant: tenant.clone(),
                component,
                records: 0,
                bytes: 0,
            };
            let mut after: Option<Vec<u8>> = None;
            loop {
                let exported = store.export_page(after.as_deref(), page).await?;
                let bytes: u64 = exported.records.iter().map(|r| r.len() as u64).sum();
                let records = exported.records.len() as u64;
                sender
                    .send(Frame::Records(exported.records))
                    .await
                    .map_err(closed)?;
                count.records += records;
                count.bytes += bytes;
                progress.advance(records, bytes);
                match exported.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            sender.send(Frame::End).await.map_err(closed)?;
            progress.finish(count.records);
            counts.push(count);
        }
    }
    Ok(counts)
}

/// What the reading thread sends the importing task.
enum Item {
    Begin(TenantId, Component),
    Records(Vec<Bytes>, u64),
    End,
}

/// The tenant and component a section names.
///
/// # Errors
/// `InvalidInput` for a name this build does not know.
fn section_of(component: &str, tenant: &str) -> Result<(TenantId, Component)> {
    Ok((TenantId::new(tenant)?, Component::from_str(component)?))
}

/// The thread that owns a [`DumpReader`]: sends each section's records in batches of up to
/// `page` (smaller for artifacts), skipping sections `wanted` refuses.
fn spawn_reader(
    input: impl Read + Send + 'static,
    page: usize,
    wanted: impl Fn(&TenantId, Component) -> bool + Send + 'static,
) -> (mpsc::Receiver<Item>, JoinHandle<Result<DumpHeader>>) {
    let (sender, items) = mpsc::channel::<Item>(2);
    let thread = tokio::task::spawn_blocking(move || {
        let mut reader = DumpReader::open(BufReader::with_capacity(1 << 20, input))?;
        let mut batch = Vec::new();
        let (mut bytes, mut limit, mut keep) = (0u64, page, false);
        let send = |item| sender.blocking_send(item).is_ok();
        while let Some(item) = reader.next_item()? {
            match item {
                DumpItem::SectionStart { component, tenant } => {
                    let (tenant, component) = section_of(&component, &tenant)?;
                    keep = wanted(&tenant, component);
                    limit = page_for(component, page);
                    if keep && !send(Item::Begin(tenant, component)) {
                        break;
                    }
                }
                DumpItem::Record(record) if keep => {
                    bytes += record.len() as u64;
                    batch.push(Bytes::from(record));
                    if batch.len() >= limit
                        && !send(Item::Records(
                            std::mem::take(&mut batch),
                            std::mem::take(&mut bytes),
                        ))
                    {
                        break;
                    }
                }
                DumpItem::Record(_) => {}
                DumpItem::SectionEnd { .. } if keep => {
                    let records = std::mem::take(&mut batch);
                    if !send(Item::Records(records, std::mem::take(&mut bytes))) || !send(Item::End)
                    {
                        break;
                    }
                }
                DumpItem::SectionEnd { .. } => {}
            }
        }
        Ok(reader.header().clone())
    });
    (items, thread)
}

/// Reads a whole dump, checking every section's count and digest and the file's, and returns
/// its header and the count of every section. Nothing is imported.
///
/// # Errors
/// `Corruption` for a damaged or truncated dump; `Unsupported` for a newer format;
/// `InvalidInput` for a section naming an unknown component or an invalid tenant.
pub async fn verify_dump(
    input: impl Read + Send + 'static,
) -> Result<(DumpHeader, Vec<SectionCount>)> {
    tokio::task::spawn_blocking(move || {
        let mut reader = DumpReader::open(BufReader::with_capacity(1 << 20, input))?;
        let mut counts: Vec<SectionCount> = Vec::new();
        while let Some(item) = reader.next_item()? {
            match item {
                DumpItem::SectionStart { component, tenant } => {
                    let (tenant, component) = section_of(&component, &tenant)?;
                    counts.push(SectionCount {
                        tenant,
                        component,
                        records: 0,
                        bytes: 0,
                    });
                }
                DumpItem::Record(record) => {
                    if let Some(count) = counts.last_mut() {
                        count.records += 1;
                        count.bytes += record.len() as u64;
                    }
                }
                DumpItem::SectionEnd { .. } => {}
            }
        }
        Ok((reader.header().clone(), counts))
    })
    .await
    .map_err(|err| {
        Error::new(ErrorKind::Backend, "the dump file's thread failed").with_source(err)
    })?
}

/// Imports the selected sections of a dump into `storage`, `page` records per import call,
/// and returns the count of every section imported. `open` is called twice: the whole dump
/// is verified first ([`verify_dump`]), so a damaged or truncated file imports nothing.
///
/// Importing the same dump again changes nothing (each store replaces a record of the same
/// identity).
///
/// # Errors
/// As [`verify_dump`]; the stores' import errors (the pages before the failing one stay
/// imported; importing again completes the import).
pub async fn import<R: Read + Send + 'static>(
    storage: &Storage,
    open: impl Fn() -> Result<R>,
    selection: &Selection,
    page: usize,
    progress: &dyn Progress,
) -> Result<Vec<SectionCount>> {
    let (_, sections) = verify_dump(open()?).await?;
    let wanted = selection.clone();
    let (mut items, thread) = spawn_reader(open()?, page, move |tenant, component| {
        wanted.covers(tenant, component)
    });
    let imported = import_items(storage, &sections, &mut items, progress).await;
    drop(items);
    let read = thread_result(thread).await;
    match (imported, read) {
        (_, Err(err)) => Err(err),
        (imported, Ok(_)) => imported,
    }
}

/// Imports what the reading thread sends.
async fn import_items(
    storage: &Storage,
    sections: &[SectionCount],
    items: &mut mpsc::Receiver<Item>,
    progress: &dyn Progress,
) -> Result<Vec<SectionCount>> {
    let mut counts: Vec<SectionCount> = Vec::new();
    let mut store = None;
    while let Some(item) = items.recv().await {
        match item {
            Item::Begin(tenant, component) => {
                let total = sections
                    .iter()
                    .find(|s| s.tenant == tenant && s.component == component)
                    .map(|s| s.records);
                progress.start(&tenant, component, total);
                store = Some(storage.tenant(&tenant).portable(component));
                counts.push(SectionCount {
                    tenant,
                    component,
                    records: 0,
                    bytes: 0,
                });
            }
            Item::Records(records, bytes) => {
                let (Some(store), Some(count)) = (&store, counts.last_mut()) else {
                    return Err(Error::corruption("dump records outside a section"));
                };
                if !records.is_empty() {
                    store.import(&records).await?;
                }
                count.records += records.len() as u64;
                count.bytes += bytes;
                progress.advance(records.len() as u64, bytes);
            }
            Item::End => {
                if let Some(count) = counts.last() {
                    progress.finish(count.records);
                }
                store = None;
            }
        }
    }
    Ok(counts)
}
