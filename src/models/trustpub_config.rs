//! Trusted publisher configs as stored: which CI workflows may publish a crate.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::{DbConn, lower};
use crate::schema::{crates, trustpub_github_configs, trustpub_gitlab_configs};
use crate::trustpub::{GitHubPublisher, GitLabPublisher};

#[derive(Queryable, Selectable, Identifiable, Debug, Clone)]
#[diesel(table_name = trustpub_github_configs)]
pub struct GitHubConfig {
    pub id: i64,
    pub crate_id: i64,
    pub repository_owner: String,
    pub repository_owner_id: i64,
    pub repository_name: String,
    pub workflow_filename: String,
    pub environment: Option<String>,
    pub created_at: NaiveDateTime,
    pub created_by: Option<i64>,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = trustpub_github_configs)]
pub struct NewGitHubConfig<'a> {
    pub crate_id: i64,
    pub repository_owner: &'a str,
    pub repository_owner_id: i64,
    pub repository_name: &'a str,
    pub workflow_filename: &'a str,
    pub environment: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub created_by: Option<i64>,
}

#[derive(Queryable, Selectable, Identifiable, Debug, Clone)]
#[diesel(table_name = trustpub_gitlab_configs)]
pub struct GitLabConfig {
    pub id: i64,
    pub crate_id: i64,
    pub namespace: String,
    pub namespace_id: Option<i64>,
    pub project: String,
    pub workflow_filepath: String,
    pub environment: Option<String>,
    pub created_at: NaiveDateTime,
    pub created_by: Option<i64>,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = trustpub_gitlab_configs)]
pub struct NewGitLabConfig<'a> {
    pub crate_id: i64,
    pub namespace: &'a str,
    pub project: &'a str,
    pub workflow_filepath: &'a str,
    pub environment: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub created_by: Option<i64>,
}

impl NewGitHubConfig<'_> {
    pub fn insert(&self, conn: &mut DbConn) -> QueryResult<GitHubConfig> {
        diesel::insert_into(trustpub_github_configs::table)
            .values(self)
            .execute(conn)?;
        trustpub_github_configs::table
            .filter(trustpub_github_configs::crate_id.eq(self.crate_id))
            .order(trustpub_github_configs::id.desc())
            .select(GitHubConfig::as_select())
            .first(conn)
    }
}

impl NewGitLabConfig<'_> {
    pub fn insert(&self, conn: &mut DbConn) -> QueryResult<GitLabConfig> {
        diesel::insert_into(trustpub_gitlab_configs::table)
            .values(self)
            .execute(conn)?;
        trustpub_gitlab_configs::table
            .filter(trustpub_gitlab_configs::crate_id.eq(self.crate_id))
            .order(trustpub_gitlab_configs::id.desc())
            .select(GitLabConfig::as_select())
            .first(conn)
    }
}

impl GitHubConfig {
    pub fn for_crate(conn: &mut DbConn, crate_id: i64) -> QueryResult<Vec<GitHubConfig>> {
        trustpub_github_configs::table
            .filter(trustpub_github_configs::crate_id.eq(crate_id))
            .order(trustpub_github_configs::id.asc())
            .select(GitHubConfig::as_select())
            .load(conn)
    }

    pub fn by_id(conn: &mut DbConn, id: i64) -> QueryResult<Option<GitHubConfig>> {
        trustpub_github_configs::table
            .find(id)
            .select(GitHubConfig::as_select())
            .first(conn)
            .optional()
    }

    pub fn delete(conn: &mut DbConn, id: i64) -> QueryResult<()> {
        diesel::delete(trustpub_github_configs::table.find(id)).execute(conn)?;
        Ok(())
    }

    /// The configs of one repository, as the matcher wants them. A prefilter only: names are
    /// ASCII (checked when a config is created), so `lower()` and `to_ascii_lowercase` fold
    /// exactly ASCII, and a claim with any other character finds nothing; the matcher decides.
    pub fn publishers_for_repository(
        conn: &mut DbConn,
        owner: &str,
        name: &str,
    ) -> QueryResult<Vec<GitHubPublisher>> {
        let rows: Vec<(GitHubConfig, String)> = trustpub_github_configs::table
            .inner_join(crates::table)
            .filter(lower(trustpub_github_configs::repository_owner).eq(owner.to_ascii_lowercase()))
            .filter(lower(trustpub_github_configs::repository_name).eq(name.to_ascii_lowercase()))
            .select((GitHubConfig::as_select(), crates::name))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|(c, crate_name)| GitHubPublisher {
                id: c.id,
                crate_id: c.crate_id,
                crate_name,
                repository_owner: c.repository_owner,
                repository_owner_id: c.repository_owner_id,
                repository_name: c.repository_name,
                workflow_filename: c.workflow_filename,
                environment: c.environment,
            })
            .collect())
    }
}

impl GitLabConfig {
    pub fn for_crate(conn: &mut DbConn, crate_id: i64) -> QueryResult<Vec<GitLabConfig>> {
        trustpub_gitlab_configs::table
            .filter(trustpub_gitlab_configs::crate_id.eq(crate_id))
            .order(trustpub_gitlab_configs::id.asc())
            .select(GitLabConfig::as_select())
            .load(conn)
    }

    pub fn by_id(conn: &mut DbConn, id: i64) -> QueryResult<Option<GitLabConfig>> {
        trustpub_gitlab_configs::table
            .find(id)
            .select(GitLabConfig::as_select())
            .first(conn)
            .optional()
    }

    pub fn delete(conn: &mut DbConn, id: i64) -> QueryResult<()> {
        diesel::delete(trustpub_gitlab_configs::table.find(id)).execute(conn)?;
        Ok(())
    }

    /// The configs of one project (namespace and project ignoring ASCII case). A prefilter only,
    /// like [`GitHubConfig::publishers_for_repository`]; the matcher decides.
    pub fn publishers_for_project(
        conn: &mut DbConn,
        namespace: &str,
        project: &str,
    ) -> QueryResult<Vec<GitLabPublisher>> {
        let rows: Vec<(GitLabConfig, String)> = trustpub_gitlab_configs::table
            .inner_join(crates::table)
            .filter(lower(trustpub_gitlab_configs::namespace).eq(namespace.to_ascii_lowercase()))
            .filter(lower(trustpub_gitlab_configs::project).eq(project.to_ascii_lowercase()))
            .select((GitLabConfig::as_select(), crates::name))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|(c, crate_name)| GitLabPublisher {
                id: c.id,
                crate_id: c.crate_id,
                crate_name,
                namespace: c.namespace,
                namespace_id: c.namespace_id,
                project: c.project,
                workflow_filepath: c.workflow_filepath,
                environment: c.environment,
            })
            .collect())
    }

    /// Records the namespace ID seen on first use; never overwrites one already recorded.
    pub fn capture_namespace_id(conn: &mut DbConn, id: i64, namespace_id: i64) -> QueryResult<()> {
        diesel::update(
            trustpub_gitlab_configs::table
                .find(id)
                .filter(trustpub_gitlab_configs::namespace_id.is_null()),
        )
        .set(trustpub_gitlab_configs::namespace_id.eq(namespace_id))
        .execute(conn)?;
        Ok(())
    }
}
