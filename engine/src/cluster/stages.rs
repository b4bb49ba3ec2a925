//! What a run on a cluster needs beyond its session: where stage results go, and how
//! many blocks of patients run at once.
//!
//! A stage's patient-level values are written by the executors as parquet into a
//! folder every process of the cluster can read, and later plans read them as a
//! table that travels as its path. Held in the client's memory instead, they would
//! travel inside every later plan to every task (a block of 10M patients: millions
//! of rows per task, up to the 1 GiB message cap).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::UInt64Array;
use datafusion::catalog::TableProvider;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionContext};

use crate::err;
use crate::error::Result;

/// A run's settings on a cluster, carried by its session (see [`of`]).
#[derive(Debug)]
pub struct ClusterRun {
    /// Where stage results are written; `None` when the tables themselves travel
    /// inside the plans (dummy data), as the stage results then do too.
    pub stages: Option<StageFiles>,
    /// Blocks of patients whose jobs are on the cluster at the same time.
    pub blocks_at_once: usize,
}

/// The cluster settings of a session (none for a local one).
pub fn of(ctx: &SessionContext) -> Option<Arc<ClusterRun>> {
    ctx.state().config().get_extension::<ClusterRun>()
}

/// Blocks of patients to run at once in this session: one locally (a block uses
/// every core), more on a cluster, where one block's job rarely fills every task slot.
pub fn blocks_at_once(ctx: &SessionContext) -> usize {
    of(ctx).map_or(1, |run| run.blocks_at_once.max(1))
}

/// A folder of stage results for one run, removed with everything in it when the
/// run ends (successfully or not).
#[derive(Debug)]
pub struct StageFiles {
    root: PathBuf,
    written: AtomicUsize,
    /// The parent made for this run (by default, inside --data), removed if empty.
    tidy_parent: Option<PathBuf>,
}

impl StageFiles {
    /// A new, empty folder for this run's stages inside `parent`, which is removed
    /// too at the end if `tidy_parent` and nothing else is in it.
    pub fn create(parent: &Path, tidy_parent: bool) -> Result<StageFiles> {
        let tidy_parent = tidy_parent.then(|| parent.to_path_buf());
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let root = parent.join(format!("run-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&root)
            .map_err(|e| err!("cannot create a folder for stage results in {} ({e}); give --stage-dir a folder every executor can write", parent.display()))?;
        let root = root.canonicalize().map_err(|e| err!("{}: {e}", root.display()))?;
        Ok(StageFiles { root, written: AtomicUsize::new(0), tidy_parent })
    }

    /// Run `plan` on the cluster, its executors writing the rows to a new folder of
    /// parquet files, and return the table of those files.
    pub async fn materialise(&self, ctx: &SessionContext, plan: LogicalPlan) -> Result<Arc<dyn TableProvider>> {
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let dir = self.root.join(format!("stage-{}", self.written.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).map_err(|e| err!("{}: {e}", dir.display()))?;
        // A trailing slash makes DataFusion write a folder of files, one per partition.
        let url = format!("{}/", dir.display());
        let written = DataFrame::new(ctx.state(), plan).write_parquet(&url, DataFrameWriteOptions::new(), None).await?;
        if std::env::var_os("EHRFUSION_METRICS").is_some() {
            let rows: u64 = written.iter().filter_map(|b| b.column(0).as_any().downcast_ref::<UInt64Array>()).map(|c| c.values().iter().sum::<u64>()).sum();
            eprintln!("== an earlier stage's values: {rows} rows written by the cluster to {url} ==");
        }
        let table = crate::source::typed::listing(vec![ListingTableUrl::parse(&url)?], schema, false)?;
        Ok(Arc::new(table))
    }
}

impl Drop for StageFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        if let Some(parent) = &self.tidy_parent {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
