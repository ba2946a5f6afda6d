//! `etl schema`: the JSON Schemas of the configuration files, generated from the code.

use std::path::Path;

use clap::ValueEnum;

use crate::config::schema::{pipeline_schema, project_schema, render};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    Pipeline,
    Project,
}

pub fn run(which: Which, write: Option<&Path>) -> i32 {
    match write {
        Some(dir) => {
            let files = [
                ("pipeline.schema.json", pipeline_schema()),
                ("project.schema.json", project_schema()),
            ];
            for (name, schema) in files {
                let path = dir.join(name);
                let written = std::fs::create_dir_all(dir)
                    .and_then(|_| std::fs::write(&path, render(&schema)));
                if let Err(error) = written {
                    eprintln!("error: cannot write {}: {error}", path.display());
                    return 1;
                }
                println!("wrote {}", path.display());
            }
            0
        }
        None => {
            let schema = match which {
                Which::Pipeline => pipeline_schema(),
                Which::Project => project_schema(),
            };
            print!("{}", render(&schema));
            0
        }
    }
}
