export * from './common.ts'
export * from './pilot-profile.ts'
