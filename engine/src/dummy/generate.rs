//! Generating dummy rows, patient by patient. Each patient's rows in each table come
//! from a random stream seeded by (seed, patient, table), so the same seed gives the
//! same tables however the work is split across threads and batches.


use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;

use arrow::array::*;
use arrow::record_batch::RecordBatch;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Zipf};
use rayon::prelude::*;

use super::hints::Hints;
use super::pattern::Pattern;
use crate::error::Result;
use crate::model::schema::{ColumnSchema, Constraints, TableSchema};
use crate::model::types::parse_iso_date;
use crate::model::{CodeSystem, Literal, ValueType};
use crate::source::builder::ColumnBuilder;
use crate::source::table_arrow_schema;

const DAY: i32 = 1;
const YEAR: i32 = 365;

/// A patient's life: everything else about them is drawn within it.
struct Person {
    dob: i32,
    death: Option<i32>,
    sex: &'static str,
}

enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Owned(String),
    Date(i32),
}

fn push(column: &mut ColumnBuilder, v: Value) {
    match (column, v) {
        (ColumnBuilder::Bool(b), Value::Bool(x)) => b.append_value(x),
        (ColumnBuilder::Int(b), Value::Int(x)) => b.append_value(x),
        (ColumnBuilder::Float(b), Value::Float(x)) => b.append_value(x),
        (ColumnBuilder::Str(b), Value::Str(x)) => b.append_value(x),
        (ColumnBuilder::Str(b), Value::Owned(x)) => b.append_value(x),
        (ColumnBuilder::Date(b), Value::Date(x)) => b.append_value(x),
        (column, _) => column.append_null(),
    }
}

struct TableBuilder {
    pids: Int64Builder,
    columns: Vec<ColumnBuilder>,
}

/// How much data, and how it is spread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Few rows per patient, most of them near the query's dates and codes: enough
    /// to exercise a definition quickly (ehrQL's kind of dummy data).
    #[default]
    Query,
    /// Volumes like a real primary-care population, for benchmarks: about 100
    /// clinical events and 40 medications per patient (log-normal, so a long tail),
    /// codes drawn with Zipf-skewed frequencies from a universe of 30,000 SNOMED-CT
    /// (10,000 dm+d) codes that holds the query's codes, dates over 2000-2025, 1%
    /// deaths.
    Population,
}

/// Per-column facts prepared once: hinted values, patterns, code pools.
struct ColumnPlan {
    /// The column's constraints with its dummy-data-only ones applied.
    constraints: Constraints,
    hinted: Vec<Literal>,
    prefixes: Vec<String>,
    pattern: Option<Pattern>,
    codes: Vec<String>,
    /// Zipf over `codes` (population profile): rank 1 is the commonest code.
    zipf: Option<Zipf<f64>>,
}

pub struct Generator {
    tables: Vec<TableSchema>,
    plans: Vec<Vec<ColumnPlan>>,
    seed: u64,
    /// The dates the query looks at (with a margin), where most events fall.
    window: (i32, i32),
    /// No date lies after this one.
    today: i32,
    profile: Profile,
}

fn stream(seed: u64, patient: i64, salt: &str) -> SmallRng {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (seed, patient, salt).hash(&mut h);
    SmallRng::seed_from_u64(h.finish())
}

/// Codes that look like codes of the system, to stand beside the ones the query
/// looks for (so its filters have something to reject).
fn code_pool(system: CodeSystem, seed: u64, size: usize) -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(seed ^ system as u64);
    let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..size)
        .map(|_| match system {
            CodeSystem::SnomedCt => rng.random_range(100_000_000u64..999_999_999).to_string(),
            CodeSystem::Dmd => rng.random_range(10_000_000_000u64..99_999_999_999).to_string(),
            CodeSystem::Ctv3 => {
                let mut s = String::from("X");
                for _ in 0..4 {
                    s.push(letters[rng.random_range(0..26)] as char);
                }
                s
            }
            CodeSystem::Icd10 | CodeSystem::Opcs4 => format!("{}{:03}", letters[rng.random_range(0..26)] as char, rng.random_range(0..1000)),
            CodeSystem::Bnf => format!("{:015}", rng.random_range(0..999_999_999_999_999u64)),
        })
        .collect()
}

/// A population-profile code universe of `size` codes with the query's codes placed
/// at ranks spread log-uniformly from 100 to the end (so a codelist mixes common and
/// rare codes); the commonest ranks stand for administrative codes.
fn code_universe(system: CodeSystem, hinted: &[Literal], seed: u64, size: usize) -> Vec<String> {
    let mut codes = code_pool(system, seed, size);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let mut taken = HashSet::new();
    for code in hinted.iter().filter_map(|l| if let Literal::Str(s) = l { Some(s) } else { None }).take(size) {
        let mut rank = ((100.0 * (size as f64 / 100.0).powf(rng.random::<f64>())) as usize).min(size - 1);
        while !taken.insert(rank) {
            rank = (rank + 1) % size;
        }
        codes[rank] = code.clone();
    }
    codes
}

impl Generator {
    pub fn new(tables: Vec<TableSchema>, hints: &Hints, seed: u64, profile: Profile) -> Generator {
        let default = (parse_iso_date("2015-01-01").unwrap(), parse_iso_date("2025-12-31").unwrap());
        let window = match (profile, hints.dates.first(), hints.dates.last()) {
            (Profile::Population, _, _) => (parse_iso_date("2000-01-01").unwrap(), parse_iso_date("2025-12-31").unwrap()),
            (Profile::Query, Some(lo), Some(hi)) => (lo - 5 * YEAR, hi + YEAR),
            _ => default,
        };
        let today = window.1.max(parse_iso_date("2025-12-31").unwrap());
        let plans = tables
            .iter()
            .map(|t| {
                t.columns
                    .iter()
                    .map(|c| {
                        let key = (t.name.clone(), c.name.clone());
                        let system = match &c.ty {
                            ValueType::Code(s) | ValueType::MultiCodeString(s) => Some(*s),
                            _ => None,
                        };
                        let hinted = hints.values.get(&key).cloned().unwrap_or_default();
                        let (codes, zipf) = match (profile, system, &c.ty) {
                            (Profile::Population, Some(s), ValueType::Code(_)) => {
                                let size = if s == CodeSystem::SnomedCt { 30_000 } else { 10_000 };
                                let codes = code_universe(s, &hinted, seed, size);
                                (codes, Some(Zipf::new(size as f64, 1.0).expect("valid Zipf")))
                            }
                            (_, Some(s), _) => (code_pool(s, seed, 60), None),
                            _ => (vec![], None),
                        };
                        ColumnPlan {
                            constraints: c.constraints.for_dummy_data(),
                            hinted,
                            prefixes: hints.prefixes.get(&key).cloned().unwrap_or_default(),
                            pattern: c.constraints.regex.as_deref().and_then(Pattern::parse),
                            codes,
                            zipf,
                        }
                    })
                    .collect()
            })
            .collect();
        Generator { tables, plans, seed, window, today, profile }
    }

    fn person(&self, patient: i64) -> Person {
        let mut rng = stream(self.seed, patient, "person");
        let age_days = rng.random_range(0..100 * YEAR);
        let dob = self.window.1 - YEAR - age_days;
        let dob = first_of_month(dob);
        let death_rate = if self.profile == Profile::Population { 0.01 } else { 0.08 };
        let death = (rng.random_bool(death_rate)).then(|| {
            let lo = dob.max(self.window.0 - 2 * YEAR);
            rng.random_range(lo..=self.today.max(lo))
        });
        let sex = match rng.random_range(0..100) {
            0..49 => "female",
            49..98 => "male",
            98 => "intersex",
            _ => "unknown",
        };
        Person { dob, death, sex }
    }

    /// Generate the tables for a range of patient ids.
    pub fn chunk(&self, ids: Range<i64>) -> Result<Vec<(String, RecordBatch)>> {
        let pieces: Vec<Vec<RecordBatch>> = split(ids, 2048)
            .into_par_iter()
            .map(|range| self.build(range))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(self.tables.len());
        for (i, t) in self.tables.iter().enumerate() {
            let parts: Vec<&RecordBatch> = pieces.iter().map(|p| &p[i]).collect();
            let schema = table_arrow_schema(t);
            out.push((t.name.clone(), arrow::compute::concat_batches(&schema, parts)?));
        }
        Ok(out)
    }

    fn build(&self, ids: Range<i64>) -> Result<Vec<RecordBatch>> {
        let mut builders: Vec<TableBuilder> = self
            .tables
            .iter()
            .map(|t| TableBuilder { pids: Int64Builder::new(), columns: t.columns.iter().map(|c| ColumnBuilder::new(&c.ty)).collect() })
            .collect();
        for pid in ids {
            let person = self.person(pid);
            for (i, t) in self.tables.iter().enumerate() {
                let mut rng = stream(self.seed, pid, &t.name);
                self.rows(t, &self.plans[i], &person, pid, &mut rng, &mut builders[i]);
            }
        }
        self.tables
            .iter()
            .zip(builders.iter_mut())
            .map(|(t, b)| {
                let mut cols: Vec<ArrayRef> = vec![Arc::new(b.pids.finish())];
                cols.extend(b.columns.iter_mut().map(ColumnBuilder::finish));
                Ok(RecordBatch::try_new(table_arrow_schema(t), cols)?)
            })
            .collect()
    }

    /// The last day the patient can have a record on.
    fn end_of_record(&self, p: &Person) -> i32 {
        p.death.unwrap_or(self.today).min(self.today)
    }

    fn rows(&self, t: &TableSchema, plans: &[ColumnPlan], p: &Person, pid: i64, rng: &mut SmallRng, out: &mut TableBuilder) {
        let end = self.end_of_record(p);
        match t.name.as_str() {
            "patients" => {
                let row: Vec<Value> = t
                    .columns
                    .iter()
                    .zip(plans)
                    .map(|(c, plan)| match c.name.as_str() {
                        "date_of_birth" => Value::Date(p.dob),
                        "sex" => Value::Str(p.sex),
                        "date_of_death" => p.death.map_or(Value::Null, Value::Date),
                        _ => self.value(c, plan, p.dob, rng),
                    })
                    .collect();
                push_row(out, pid, row);
            }
            "ons_deaths" | "ons_deaths_raw" => {
                if let Some(death) = p.death {
                    let row = t
                        .columns
                        .iter()
                        .zip(plans)
                        .map(|(c, plan)| if c.name == "date" { Value::Date(death) } else { self.value(c, plan, death, rng) })
                        .collect();
                    push_row(out, pid, row);
                }
            }
            "practice_registrations" | "addresses" => {
                // Consecutive periods from before the dates the query asks about; most
                // patients stay registered to the end of their record.
                let mut start = (self.window.0 - rng.random_range(0..10 * YEAR)).max(p.dob);
                let periods = rng.random_range(1..=3);
                for k in 0..periods {
                    if start > end {
                        break;
                    }
                    let last = k + 1 == periods;
                    let stop = if last {
                        if rng.random_bool(0.9) { None } else { Some(rng.random_range(start..=end)) }
                    } else {
                        Some(rng.random_range(start..=end.max(start)))
                    };
                    let row = t
                        .columns
                        .iter()
                        .zip(plans)
                        .map(|(c, plan)| match c.name.as_str() {
                            "start_date" => Value::Date(start),
                            "end_date" => stop.map_or(Value::Null, Value::Date),
                            "has_postcode" => Value::Bool(rng.random_bool(0.95)),
                            _ => self.value(c, plan, start, rng),
                        })
                        .collect();
                    push_row(out, pid, row);
                    match stop {
                        Some(s) => start = s + rng.random_range(0..60) * DAY,
                        None => break,
                    }
                }
            }
            _ if t.is_patient_level() => {
                if rng.random_bool(0.7) {
                    let date = self.event_date(p, rng);
                    let row = t.columns.iter().zip(plans).map(|(c, plan)| self.value(c, plan, date, rng)).collect();
                    push_row(out, pid, row);
                }
            }
            name => {
                let n = self.events_per_patient(name, rng);
                for _ in 0..n {
                    let date = self.event_date(p, rng);
                    let mut first_date = true;
                    let row = t
                        .columns
                        .iter()
                        .zip(plans)
                        .map(|(c, plan)| {
                            let k = &plan.constraints;
                            if c.ty == ValueType::Date && first_date && !k.first_of_month && k.categories.is_none() {
                                first_date = false;
                                return Value::Date(self.in_range(k, date, rng));
                            }
                            self.value(c, plan, date, rng)
                        })
                        .collect();
                    push_row(out, pid, dates_in_order(t, plans, row));
                }
            }
        }
    }

    /// How many rows a patient has in an event table.
    fn events_per_patient(&self, table: &str, rng: &mut SmallRng) -> u32 {
        match self.profile {
            Profile::Query => {
                let mean = match table {
                    "clinical_events" => 12.0,
                    "medications" => 8.0,
                    _ => 2.0,
                };
                rng.random_range(0..=(2.0 * mean) as u32)
            }
            Profile::Population => {
                let mean: f64 = match table {
                    "clinical_events" => 100.0,
                    "medications" => 40.0,
                    _ => 2.0,
                };
                // Log-normal with this mean: most patients have a few dozen events,
                // a few have thousands.
                let sigma = 1.0;
                let n = LogNormal::new(mean.ln() - sigma * sigma / 2.0, sigma).expect("valid log-normal").sample(rng);
                n.min(20_000.0) as u32
            }
        }
    }

    /// A date in the patient's record, usually within the query's window.
    fn event_date(&self, p: &Person, rng: &mut SmallRng) -> i32 {
        let end = self.end_of_record(p);
        let (lo, hi) = if self.profile == Profile::Population || rng.random_bool(0.85) {
            (self.window.0.max(p.dob), self.window.1.min(end))
        } else {
            (p.dob, end)
        };
        if lo >= hi { lo.min(end).max(p.dob) } else { rng.random_range(lo..=hi) }
    }

    /// `date`, or where it falls outside the column's `general_range` a date drawn
    /// from the range (up to today where it is open).
    fn in_range(&self, k: &Constraints, date: i32, rng: &mut SmallRng) -> i32 {
        let Some(r) = &k.general_range else { return date };
        let (lo, hi) = r.date_bounds();
        let (lo, hi) = (lo.unwrap_or(i32::MIN), hi.unwrap_or(self.today.max(lo.unwrap_or(i32::MIN))));
        if (lo..=hi).contains(&date) || lo > hi {
            date
        } else {
            rng.random_range(lo..=hi)
        }
    }

    fn value<'a>(&self, c: &ColumnSchema, plan: &'a ColumnPlan, date: i32, rng: &mut SmallRng) -> Value<'a> {
        let k = &plan.constraints;
        if !k.not_null && rng.random_bool(0.05) {
            return Value::Null;
        }
        if let Some(cats) = &k.categories {
            let hinted: Vec<&Literal> = plan.hinted.iter().collect();
            if !hinted.is_empty() && rng.random_bool(0.5) {
                return literal(hinted[rng.random_range(0..hinted.len())]);
            }
            let v = &cats[rng.random_range(0..cats.len())];
            return match v {
                serde_json::Value::String(s) if c.ty == ValueType::Date => parse_iso_date(s).map_or(Value::Null, Value::Date),
                serde_json::Value::String(s) => Value::Owned(s.clone()),
                serde_json::Value::Number(n) => n.as_i64().map_or(Value::Null, Value::Int),
                serde_json::Value::Bool(b) => Value::Bool(*b),
                _ => Value::Null,
            };
        }
        if let Some(r) = &k.range {
            let steps = (r.max - r.min) / r.step.max(1);
            return Value::Int(r.min + r.step.max(1) * rng.random_range(0..=steps));
        }
        if let Some(zipf) = &plan.zipf {
            return Value::Str(&plan.codes[zipf.sample(rng) as usize - 1]);
        }
        if !plan.hinted.is_empty() && rng.random_bool(0.5) {
            return literal(&plan.hinted[rng.random_range(0..plan.hinted.len())]);
        }
        if let Some(p) = &plan.pattern {
            return Value::Owned(p.sample(rng));
        }
        match &c.ty {
            ValueType::Bool => Value::Bool(rng.random_bool(0.5)),
            ValueType::Int => Value::Int(rng.random_range(0..1000)),
            ValueType::Float => Value::Float((rng.random_range(100..500) as f64) / 10.0),
            ValueType::Date => {
                let d = self.in_range(k, (date + rng.random_range(0..30)).min(self.today), rng);
                Value::Date(if k.first_of_month { first_of_month(d) } else { d })
            }
            ValueType::Code(_) => Value::Str(&plan.codes[rng.random_range(0..plan.codes.len())]),
            ValueType::MultiCodeString(_) => {
                let mut codes: Vec<String> = (0..rng.random_range(1..4)).map(|_| plan.codes[rng.random_range(0..plan.codes.len())].clone()).collect();
                if !plan.prefixes.is_empty() && rng.random_bool(0.5) {
                    codes.push(format!("{}{}", plan.prefixes[rng.random_range(0..plan.prefixes.len())], rng.random_range(0..10)));
                }
                Value::Owned(format!("||{}", codes.join(" ,")))
            }
            ValueType::Str => Value::Owned(format!("value{}", rng.random_range(0..20))),
            ValueType::Set(_) => Value::Null,
        }
    }
}

/// A row whose `date_after` columns are moved to the latest of the dates they follow
/// where they came out earlier.
fn dates_in_order<'a>(t: &TableSchema, plans: &[ColumnPlan], mut row: Vec<Value<'a>>) -> Vec<Value<'a>> {
    for (i, plan) in plans.iter().enumerate() {
        let Some(others) = &plan.constraints.date_after else { continue };
        let Value::Date(mine) = row[i] else { continue };
        let latest = others
            .iter()
            .filter_map(|o| t.columns.iter().position(|c| &c.name == o))
            .filter_map(|j| if let Value::Date(d) = row[j] { Some(d) } else { None })
            .max();
        if let Some(latest) = latest.filter(|l| *l > mine) {
            row[i] = Value::Date(latest);
        }
    }
    row
}

fn literal(l: &Literal) -> Value<'_> {
    match l {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(f) => Value::Float(*f),
        Literal::Str(s) => Value::Str(s),
        Literal::Date(d) => Value::Date(*d),
    }
}

fn push_row(out: &mut TableBuilder, pid: i64, row: Vec<Value>) {
    out.pids.append_value(pid);
    for (col, v) in out.columns.iter_mut().zip(row) {
        push(col, v);
    }
}

fn first_of_month(days: i32) -> i32 {
    use chrono::Datelike;
    let d = crate::model::types::days_to_date(days).expect("in range");
    crate::model::types::date_to_days(d.with_day(1).unwrap())
}

fn split(ids: Range<i64>, size: i64) -> Vec<Range<i64>> {
    let mut out = Vec::new();
    let mut start = ids.start;
    while start < ids.end {
        let end = (start + size).min(ids.end);
        out.push(start..end);
        start = end;
    }
    out
}

