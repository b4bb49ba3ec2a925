//! Random well-typed query models over the `core` tables, drawn from a tape of choices.
//! Each choice is the next number of the tape modulo the options, and 0 (also what an
//! exhausted tape gives) is always the simplest option, so shrinking the tape towards
//! fewer and smaller numbers shrinks the model towards literals and plain columns.

use ehrfusion::model::schema::Schema;
use ehrfusion::model::types::{CodeSystem, ValueType};
use serde_json::{Value as Json, json};

use crate::common::Q;

/// Literal values and data values share pools, so that comparisons and codelists hit.
pub const DATES: [&str; 9] =
    ["2020-01-31", "2020-02-29", "2020-03-01", "2019-12-31", "2021-02-28", "2020-06-15", "2021-03-31", "2020-04-30", "2024-02-29"];
pub const FIRST_OF_MONTH: [&str; 5] = ["1950-01-01", "1980-02-01", "2000-03-01", "2004-02-01", "2020-12-01"];
pub const INTS: [i64; 8] = [0, 1, 2, 3, -1, 7, 31, -12];
pub const FLOATS: [f64; 6] = [0.0, 0.5, 1.0, -1.5, 2.5, 10.0];
pub const STRS: [&str; 4] = ["male", "female", "ma", "unknown"];

pub fn codes(system: CodeSystem) -> &'static [&'static str] {
    match system {
        CodeSystem::SnomedCt => &["123456", "234567", "345678"],
        CodeSystem::Dmd => &["10000011", "20000022", "30000033"],
        _ => &["I21", "J45", "E119"],
    }
}

/// The types a variable may have.
fn value_types() -> [ValueType; 8] {
    [
        ValueType::Int,
        ValueType::Bool,
        ValueType::Date,
        ValueType::Float,
        ValueType::Str,
        ValueType::Code(CodeSystem::SnomedCt),
        ValueType::Code(CodeSystem::Dmd),
        ValueType::Code(CodeSystem::Icd10),
    ]
}

pub struct Tape<'a> {
    choices: &'a [u16],
    at: usize,
}

impl Tape<'_> {
    fn choose(&mut self, options: usize) -> usize {
        let c = self.choices.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        c as usize % options
    }

    /// Rarely true, and false when shrunk.
    fn chance(&mut self) -> bool {
        self.choose(3) == 2
    }
}

/// Where a series is evaluated: once per patient, or on every row of an event frame
/// (whose columns come from `frame`).
#[derive(Clone)]
enum Level {
    Patient,
    Event(Frame),
}

#[derive(Clone)]
struct Frame {
    node: usize,
    root: usize,
    table: String,
}

struct Table {
    name: String,
    patient_level: bool,
    columns: Vec<(String, ValueType)>,
}

pub struct Generator<'a> {
    tape: Tape<'a>,
    q: Q,
    tables: Vec<Table>,
}

/// The JSON document of a random dataset definition.
pub fn model(choices: &[u16], schema: &Schema) -> String {
    let tables = schema
        .tables
        .values()
        .map(|t| Table {
            name: t.name.clone(),
            patient_level: t.is_patient_level(),
            columns: t.columns.iter().map(|c| (c.name.clone(), c.ty.clone())).collect(),
        })
        .collect();
    let mut g = Generator { tape: Tape { choices, at: 0 }, q: Q::new(), tables };
    let population = g.population();
    let count = 1 + g.tape.choose(4);
    let mut variables = Vec::new();
    // Mostly types with many functions; text and codes have few.
    let weighted: Vec<ValueType> =
        value_types().iter().flat_map(|t| std::iter::repeat_n(t.clone(), if t.is_textual() { 1 } else { 3 })).collect();
    for i in 0..count {
        let ty = g.pick(&weighted);
        variables.push((format!("v{i}"), g.series(&ty, &Level::Patient, 3)));
    }
    let variables: Vec<(&str, usize)> = variables.iter().map(|(n, id)| (n.as_str(), *id)).collect();
    g.q.document(population, &variables, json!({}))
}

impl Generator<'_> {
    fn pick<T: Clone>(&mut self, options: &[T]) -> T {
        options[self.tape.choose(options.len())].clone()
    }

    /// The population always uses a table, so that its patients are defined.
    fn population(&mut self) -> usize {
        let table = self.table_name(|_| true);
        let frame = self.select(&table);
        let exists = self.q.agg("Exists", frame);
        match self.tape.choose(3) {
            0 => exists,
            1 => {
                let other = self.series(&ValueType::Bool, &Level::Patient, 2);
                self.q.f2("And", exists, other)
            }
            _ => {
                let other = self.series(&ValueType::Bool, &Level::Patient, 2);
                self.q.f2("Or", exists, other)
            }
        }
    }

    fn table_name(&mut self, wanted: impl Fn(&Table) -> bool) -> String {
        let names: Vec<String> = self.tables.iter().filter(|t| wanted(t)).map(|t| t.name.clone()).collect();
        self.pick(&names)
    }

    fn table(&self, name: &str) -> &Table {
        self.tables.iter().find(|t| t.name == name).unwrap()
    }

    fn select(&mut self, table: &str) -> usize {
        if self.table(table).patient_level { self.q.select_patient_table(table) } else { self.q.select_table(table) }
    }

    fn columns_of(&self, table: &str, ty: &ValueType) -> Vec<String> {
        self.table(table).columns.iter().filter(|(_, t)| t == ty).map(|(n, _)| n.clone()).collect()
    }

    /// A series of type `ty` at `level`; `depth` bounds its nesting.
    fn series(&mut self, ty: &ValueType, level: &Level, depth: usize) -> usize {
        match level {
            Level::Patient => self.patient_series(ty, depth),
            Level::Event(frame) => self.event_series(ty, frame, depth),
        }
    }

    fn patient_series(&mut self, ty: &ValueType, depth: usize) -> usize {
        let options = if depth == 0 { 3 } else { 7 };
        match self.tape.choose(options) {
            0 => self.literal(ty),
            1 => self.patient_column(ty),
            2 => self.aggregate(ty, depth),
            3 => self.picked(ty, depth),
            4 | 5 => self.function(ty, &Level::Patient, depth - 1),
            _ => self.case(ty, &Level::Patient, depth - 1),
        }
    }

    /// An event-level series: it always reads a column of the frame.
    fn event_series(&mut self, ty: &ValueType, frame: &Frame, depth: usize) -> usize {
        let columns = self.columns_of(&frame.table, ty);
        let choice = if depth == 0 { 0 } else { self.tape.choose(5) };
        match choice {
            0 | 1 if !columns.is_empty() => {
                let name = self.pick(&columns);
                self.q.col(frame.node, &name)
            }
            0..=3 if depth > 0 => self.function(ty, &Level::Event(frame.clone()), depth - 1),
            4 => self.case(ty, &Level::Event(frame.clone()), depth - 1),
            _ => {
                // No column of this type: a value chosen by whether some column is null.
                let (name, _) = self.pick(&self.table(&frame.table).columns.clone());
                let column = self.q.col(frame.node, &name);
                let condition = self.q.f1("IsNull", column);
                let (then, otherwise) = (self.literal(ty), self.literal(ty));
                self.q.case(&[(condition, Some(then))], Some(otherwise))
            }
        }
    }

    fn literal(&mut self, ty: &ValueType) -> usize {
        if self.tape.choose(6) == 5 {
            return self.q.null(&ty.to_string());
        }
        let value = self.literal_json(ty);
        self.q.value(&ty.to_string(), value)
    }

    fn literal_json(&mut self, ty: &ValueType) -> Json {
        match ty {
            ValueType::Bool => json!(self.tape.choose(2) == 1),
            ValueType::Int => json!(self.pick(&INTS)),
            ValueType::Float => json!(self.pick(&FLOATS)),
            ValueType::Date => json!(self.pick(&DATES)),
            ValueType::Str => json!(self.pick(&STRS)),
            ValueType::Code(system) => json!(self.pick(codes(*system))),
            other => panic!("no literals of {other}"),
        }
    }

    fn patient_column(&mut self, ty: &ValueType) -> usize {
        let tables: Vec<String> =
            self.tables.iter().filter(|t| t.patient_level && t.columns.iter().any(|(_, c)| c == ty)).map(|t| t.name.clone()).collect();
        if tables.is_empty() {
            return self.literal(ty);
        }
        let table = self.pick(&tables);
        let columns = self.columns_of(&table, ty);
        let name = self.pick(&columns);
        let frame = self.q.select_patient_table(&table);
        self.q.col(frame, &name)
    }

    /// An event frame: a table and a few filters.
    fn event_frame_of(&mut self, table: &str, depth: usize) -> Frame {
        let root = self.q.select_table(table);
        let mut frame = Frame { node: root, root, table: table.to_string() };
        let filters = if depth == 0 { 0 } else { self.tape.choose(3) };
        for _ in 0..filters {
            let condition = self.row_series(&ValueType::Bool, &frame, depth - 1);
            frame.node = self.q.filter(frame.node, condition);
        }
        frame
    }

    /// A series for a frame's filter or sort: over its own rows or its table's.
    fn row_series(&mut self, ty: &ValueType, frame: &Frame, depth: usize) -> usize {
        let node = if self.tape.chance() { frame.root } else { frame.node };
        self.event_series(ty, &Frame { node, ..frame.clone() }, depth)
    }

    fn aggregate(&mut self, ty: &ValueType, depth: usize) -> usize {
        use ValueType::{Bool, Date, Float, Int};
        let (op, source_ty) = match ty {
            Bool => ("Exists", None),
            Int => match self.tape.choose(5) {
                0 => ("Count", None),
                1 => ("CountDistinct", Some(self.pick(&value_types()))),
                2 => ("CountEpisodes", Some(Date)),
                3 => ("Sum", Some(Int)),
                _ => (self.pick(&["Min", "Max"]), Some(Int)),
            },
            Float => {
                self.pick(&[("Sum", Some(Float)), ("Mean", Some(Float)), ("Mean", Some(Int)), ("Min", Some(Float)), ("Max", Some(Float))])
            }
            _ => (self.pick(&["Min", "Max"]), Some(ty.clone())),
        };
        let inner = depth.saturating_sub(1);
        let frame = self.event_frame_with(source_ty.as_ref(), inner);
        let Some(source_ty) = source_ty else {
            if op == "Exists" && self.tape.chance() {
                let pick = self.pick_frame(&frame.table, depth);
                return self.q.agg("Exists", pick);
            }
            return self.q.agg(op, frame.node);
        };
        let source = self.event_series(&source_ty, &frame, inner);
        match op {
            "CountEpisodes" => {
                let gap = self.pick(&[0, 1, 30, 365]);
                self.q.count_episodes(source, gap)
            }
            _ => self.q.agg(op, source),
        }
    }

    /// An event frame of a table with a column of type `ty`, if there is one.
    fn event_frame_with(&mut self, ty: Option<&ValueType>, depth: usize) -> Frame {
        let has = |t: &Table| !t.patient_level && ty.is_none_or(|ty| t.columns.iter().any(|(_, c)| c == ty));
        let table = if self.tables.iter().any(has) { self.table_name(has) } else { self.table_name(|t| !t.patient_level) };
        self.event_frame_of(&table, depth)
    }

    /// A column of the row picked from a sorted frame of a table that has one of type `ty`.
    fn picked(&mut self, ty: &ValueType, depth: usize) -> usize {
        let tables: Vec<String> =
            self.tables.iter().filter(|t| !t.patient_level && t.columns.iter().any(|(_, c)| c == ty)).map(|t| t.name.clone()).collect();
        if tables.is_empty() {
            return self.aggregate(ty, depth);
        }
        let table = self.pick(&tables);
        let pick = self.pick_frame(&table, depth);
        let columns = self.columns_of(&table, ty);
        let name = self.pick(&columns);
        self.q.col(pick, &name)
    }

    /// Sorted by one or two keys (maybe in two sorts), then first or last. Rows may tie
    /// on the keys: ehrQL then decides by the columns selected from the pick.
    fn pick_frame(&mut self, table: &str, depth: usize) -> usize {
        let inner = depth.saturating_sub(1);
        let frame = self.event_frame_of(table, inner);
        let keys = vec![self.sort_key(&frame, inner)];
        let mut sorted = self.q.sort(frame.node, &keys);
        if self.tape.chance() {
            let outer = self.sort_key(&frame, inner);
            sorted = self.q.sort(sorted, &[outer]);
        }
        if self.tape.choose(2) == 0 { self.q.first(sorted) } else { self.q.last(sorted) }
    }

    /// A key of the type of one of the frame's columns, or a computed int or bool.
    fn sort_key(&mut self, frame: &Frame, depth: usize) -> usize {
        let mut types: Vec<ValueType> = self.table(&frame.table).columns.iter().map(|(_, t)| t.clone()).collect();
        types.extend([ValueType::Int, ValueType::Bool]);
        let ty = self.pick(&types);
        self.row_series(&ty, frame, depth)
    }

    /// Arguments of a function at `level`: at event level the first one is event-level
    /// and the others may be either.
    fn args(&mut self, types: &[ValueType], level: &Level, depth: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, ty) in types.iter().enumerate() {
            let arg_level = if i == 0 || self.tape.chance() { level.clone() } else { Level::Patient };
            out.push(self.series(ty, &arg_level, depth));
        }
        out
    }

    fn call(&mut self, op: &str, types: &[ValueType], level: &Level, depth: usize) -> usize {
        let args = self.args(types, level, depth);
        match args.len() {
            1 if !matches!(op, "MinimumOf" | "MaximumOf") => self.q.f1(op, args[0]),
            2 if !matches!(op, "MinimumOf" | "MaximumOf") => self.q.f2(op, args[0], args[1]),
            _ => self.q.fnn(op, &args),
        }
    }

    fn function(&mut self, ty: &ValueType, level: &Level, depth: usize) -> usize {
        use ValueType::{Bool, Date, Float, Int, Str};
        match ty {
            Bool => match self.tape.choose(6) {
                0 => {
                    let op = self.pick(&["EQ", "NE", "LT", "LE", "GT", "GE"]);
                    let t = self.pick(&[Int, Float, Date, Str, ValueType::Code(CodeSystem::SnomedCt)]);
                    self.call(op, &[t.clone(), t], level, depth)
                }
                1 => {
                    let op = self.pick(&["And", "Or"]);
                    self.call(op, &[Bool, Bool], level, depth)
                }
                2 => self.call("Not", &[Bool], level, depth),
                3 => {
                    let t = self.pick(&value_types());
                    self.call("IsNull", &[t], level, depth)
                }
                4 => self.is_in(level, depth),
                _ => self.call("StringContains", &[Str, Str], level, depth),
            },
            Int => match self.tape.choose(7) {
                0 => {
                    let op = self.pick(&["Add", "Subtract", "Multiply"]);
                    self.call(op, &[Int, Int], level, depth)
                }
                1 => {
                    let op = self.pick(&["Negate", "Absolute"]);
                    self.call(op, &[Int], level, depth)
                }
                2 => {
                    let t = self.pick(&[Int, Float]);
                    self.call("FloorDivide", &[t.clone(), t], level, depth)
                }
                3 => {
                    let t = self.pick(&[Float, Bool]);
                    self.call("CastToInt", &[t], level, depth)
                }
                4 => {
                    let op = self.pick(&["DateDifferenceInDays", "DateDifferenceInMonths", "DateDifferenceInYears"]);
                    self.call(op, &[Date, Date], level, depth)
                }
                5 => {
                    let op = self.pick(&["YearFromDate", "MonthFromDate", "DayFromDate"]);
                    self.call(op, &[Date], level, depth)
                }
                _ => self.extreme_of(ty, level, depth),
            },
            Float => match self.tape.choose(6) {
                0 => {
                    let op = self.pick(&["Add", "Subtract", "Multiply"]);
                    self.call(op, &[Float, Float], level, depth)
                }
                1 => {
                    let op = self.pick(&["Negate", "Absolute"]);
                    self.call(op, &[Float], level, depth)
                }
                2 => {
                    let t = self.pick(&[Int, Float]);
                    self.call("TrueDivide", &[t.clone(), t], level, depth)
                }
                3 => self.call("CastToFloat", &[Int], level, depth),
                // Shallow, so that powers stay small.
                4 => self.call("Power", &[Float, Float], level, 0),
                _ => self.extreme_of(ty, level, depth),
            },
            Date => match self.tape.choose(3) {
                0 => {
                    let op = self.pick(&["DateAddDays", "DateAddMonths", "DateAddYears"]);
                    let date = self.series(&Date, level, depth);
                    let amount = self.small_int(level);
                    self.q.f2(op, date, amount)
                }
                1 => {
                    let op = self.pick(&["ToFirstOfYear", "ToFirstOfMonth"]);
                    self.call(op, &[Date], level, depth)
                }
                _ => self.extreme_of(ty, level, depth),
            },
            _ => self.extreme_of(ty, level, depth),
        }
    }

    /// A day, month or year count that keeps dates within the calendar.
    fn small_int(&mut self, level: &Level) -> usize {
        match self.tape.choose(3) {
            0 => self.literal(&ValueType::Int),
            1 => {
                let level = if self.tape.chance() { level.clone() } else { Level::Patient };
                let date = self.series(&ValueType::Date, &level, 0);
                let op = self.pick(&["MonthFromDate", "DayFromDate"]);
                self.q.f1(op, date)
            }
            _ => {
                let n = self.pick(&[-400, -13, 12, 25, 366]);
                self.q.int(n)
            }
        }
    }

    fn extreme_of(&mut self, ty: &ValueType, level: &Level, depth: usize) -> usize {
        let op = self.pick(&["MinimumOf", "MaximumOf"]);
        let count = 2 + self.tape.choose(2);
        self.call(op, &vec![ty.clone(); count], level, depth)
    }

    /// Membership of a codelist (possibly empty) or of a patient's set of values.
    fn is_in(&mut self, level: &Level, depth: usize) -> usize {
        let ty = self.pick(&[
            ValueType::Code(CodeSystem::SnomedCt),
            ValueType::Code(CodeSystem::Dmd),
            ValueType::Code(CodeSystem::Icd10),
            ValueType::Int,
        ]);
        let value = self.series(&ty, level, depth);
        let set = if self.tape.chance() {
            let frame = self.event_frame_with(Some(&ty), depth);
            let members = self.event_series(&ty, &frame, depth);
            self.q.agg("CombineAsSet", members)
        } else {
            let size = self.tape.choose(4);
            let members: Vec<Json> = (0..size).map(|_| self.literal_json(&ty)).collect();
            self.q.set(&ty.to_string(), Json::Array(members))
        };
        self.q.f2("In", value, set)
    }

    fn case(&mut self, ty: &ValueType, level: &Level, depth: usize) -> usize {
        let count = 1 + self.tape.choose(2);
        let mut cases = Vec::new();
        for i in 0..count {
            let condition_level = if i == 0 || self.tape.chance() { level.clone() } else { Level::Patient };
            let condition = self.series(&ValueType::Bool, &condition_level, depth);
            let value = self.case_value(ty, level, depth);
            cases.push((condition, value));
        }
        let mut default = self.case_value(ty, level, depth);
        // ehrQL refuses a case whose values are all null.
        if default.is_none() && cases.iter().all(|(_, v)| v.is_none()) {
            default = Some(self.series(ty, &Level::Patient, depth));
        }
        self.q.case(&cases, default)
    }

    /// A value of a case (or its default), or none (null).
    fn case_value(&mut self, ty: &ValueType, level: &Level, depth: usize) -> Option<usize> {
        if self.tape.chance() {
            return None;
        }
        let level = if self.tape.chance() { level.clone() } else { Level::Patient };
        Some(self.series(ty, &level, depth))
    }
}
